"""The Celery app. Tasks are found in each Django app's ``tasks.py``."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("margin")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
