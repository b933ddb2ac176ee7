"""A stress run's rows written with room on each page for their sale plan.

The run writes its rows in one statement, then the plans into the sixth of them a call or a sale reaches
(the bench's BTC and ETH -30%: 16,528 of 100,000). On a full page each such update moves the row to another
page and adds an entry to each of the table's three indexes; with a third of the page left free the new
version stays on its page and no index changes (a heap-only update: 93% of the plans at 65%, 72% at 75%, none
at 100%). Measured on the 100,000-client book: the plans phase 18% shorter, the valuation's write no slower.
Pages written before this keep their old room; only new ones get it.

PostgreSQL only (a storage parameter): on SQLite, the first-run database, there is nothing to set."""

from django.db import migrations


def _on_postgresql(sql: str):
    def run(apps, schema_editor) -> None:
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("oversight", "0006_stress_results_status_index_partial"),
    ]

    operations = [
        migrations.RunPython(
            _on_postgresql("ALTER TABLE oversight_stressresult SET (fillfactor = 70)"),
            _on_postgresql("ALTER TABLE oversight_stressresult RESET (fillfactor)"),
        ),
    ]
