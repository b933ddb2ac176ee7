from celery import shared_task

from notifications.services import outbox_deliver, outbox_due_ids


@shared_task(name="notifications.deliver_outbox_message", ignore_result=True, acks_late=True)
def deliver_outbox_message(message_id: int) -> str:
    """Deliver one message now. Safe to run twice: the service claims the row and checks its status."""
    return outbox_deliver(message_id=message_id)


@shared_task(name="notifications.deliver_due_messages", ignore_result=True)
def deliver_due_messages() -> int:
    """The safety net: every message still pending and due, whatever happened to its first task."""
    ids = outbox_due_ids()
    for message_id in ids:
        outbox_deliver(message_id=message_id)
    return len(ids)
