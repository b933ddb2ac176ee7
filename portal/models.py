from django.conf import settings
from django.db import models


class NotificationRead(models.Model):
    """That a client user has read one of their client's events (the inbox's read and unread). No row:
    unread. Marking unread again deletes the row."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    event = models.ForeignKey(
        "notifications.Event", on_delete=models.CASCADE, related_name="+", db_constraint=False
    )
    read_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "event"], name="notification_read_once")]

    def __str__(self) -> str:
        return f"{self.user_id} read {self.event_id}"
