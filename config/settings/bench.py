"""Benchmarks: PostgreSQL and Redis started by ``scripts/services.py``; tasks are queued to Redis as in
production (nobody consumes them during the run: delivery is not part of what is timed); quiet logs."""

from django.core.exceptions import ImproperlyConfigured

from config.settings.base import *  # noqa: F403
from config.settings.base import DATABASES, LOGGING

SECRET_KEY = "bench-secret-key"
DEBUG = False
if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured("Benchmarks run on PostgreSQL: use `make bench`.")
CELERY_TASK_ALWAYS_EAGER = False
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
LOGGING = {**LOGGING, "root": {"handlers": ["console"], "level": "WARNING"}}
STAFF_ALERT_EMAILS = ["risk-desk@broker.example"]
