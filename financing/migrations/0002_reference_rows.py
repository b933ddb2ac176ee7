from django.db import migrations


def create_reference_rows(apps, schema_editor):
    apps.get_model("financing", "FirmExposure").objects.get_or_create(id=1)
    policy_model = apps.get_model("financing", "MarginPolicy")
    if not policy_model.objects.filter(is_default=True).exists():
        policy_model.objects.create(name="Standard", is_default=True)


class Migration(migrations.Migration):
    dependencies = [("financing", "0001_initial")]

    operations = [migrations.RunPython(create_reference_rows, migrations.RunPython.noop)]
