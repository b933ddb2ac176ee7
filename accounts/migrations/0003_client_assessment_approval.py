"""Who may approve a change of a client's KYC status and professional-investor evidence (four-eyes)."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0002_audit_event_append_only'),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='client',
            options={'ordering': ['reference'], 'permissions': [('approve_client_assessment', 'Can approve KYC and professional-investor assessment changes')]},
        ),
    ]
