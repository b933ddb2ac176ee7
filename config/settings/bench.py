"""Benchmarks: PostgreSQL started by ``scripts/services.py``, tasks run in-process, quiet logs."""

from django.core.exceptions import ImproperlyConfigured

from config.settings.base import *  # noqa: F403
from config.settings.base import DATABASES, LOGGING

SECRET_KEY = "bench-secret-key"
DEBUG = False
if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured("Benchmarks run on PostgreSQL: use `make bench`.")
CELERY_TASK_ALWAYS_EAGER = True
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
LOGGING = {**LOGGING, "root": {"handlers": ["console"], "level": "WARNING"}}
STAFF_ALERT_EMAILS = ["risk-desk@broker.example"]
