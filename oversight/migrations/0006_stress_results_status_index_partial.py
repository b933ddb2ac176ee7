"""A stress run's rows by status after the shock indexed only where a call, a sale or a warning reaches them.

Three in four rows of a run are "ok" (the bench's BTC and ETH -30%: 74,902 of 100,000), and the run's one
statement writes every entry with its row: the partial index spares it those (0.15 x the floor of CPU on the
100,000-client book). Every reader that filters by status asks for one the index holds (the console's list,
the API's filter on a status other than "ok", the sale planner's calls and sales); a filter on "ok" reads the
run's rows through the unique (run, facility) index."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('financing', '0007_firm_totals_listed'),
        ('oversight', '0005_stress_results_keys'),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='stressresult',
            name='stress_result_status_idx',
        ),
        migrations.AddIndex(
            model_name='stressresult',
            index=models.Index(condition=models.Q(('status_after__in', ['ok', 'no_debt']), _negated=True), fields=['run', 'status_after'], name='stress_result_status_idx'),
        ),
    ]
