import datetime

from celery import shared_task

from api.services import idempotency_records_purge


@shared_task(name="api.purge_idempotency_records")
def purge_idempotency_records(days: int = 30) -> int:
    """Forget stored responses to Idempotency-Keys older than ``days`` (drawdowns and repayments stay
    protected by the ledger's own idempotency keys)."""
    return idempotency_records_purge(older_than=datetime.timedelta(days=days))
