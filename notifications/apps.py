from django.apps import AppConfig
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = "Events and notifications"

    def ready(self) -> None:
        """Refuse to start on settings that would only fail at the first delivery."""
        from notifications.egress import trusted_hosts_check

        trusted_hosts_check()
        if settings.STAFF_ALERT_DIGEST_ABOVE < 1:
            raise ImproperlyConfigured(
                "STAFF_ALERT_DIGEST_ABOVE is at least 1 (staff alerts before a digest)."
            )
