"""A stress run's rows without a database key to their run, nor an index of its own on it.

A run writes its 100,000 rows in the transaction that made the run, in one statement
(``oversight/stress.sql``, piece ``results``): the run is there by construction, and the deferred key would
check every row again at commit (0.3 s of a 30,000-row run). The rows are deleted only with their run, by
the ORM's cascade, which needs no key. The unique (run, facility) index already leads with the run and serves
every look-up by run, so the key's own index on the run only cost writes."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('oversight', '0004_daily_report'),
    ]

    operations = [
        migrations.AlterField(
            model_name='stressresult',
            name='run',
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='results', to='oversight.stressrun'),
        ),
    ]
