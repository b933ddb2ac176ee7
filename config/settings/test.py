"""The test suite: PostgreSQL and Redis started by ``scripts/services.py`` (``make test``)."""

from django.core.exceptions import ImproperlyConfigured

from config.settings.base import *  # noqa: F403
from config.settings.base import DATABASES, env

SECRET_KEY = "test-secret-key"
DEBUG = False
if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured(
        "The test suite runs on PostgreSQL: run it through `make test`, which starts a throwaway server "
        "and sets DATABASE_URL."
    )
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=env("REDIS_URL", default="redis://127.0.0.1:6379/0"))
# Eager everywhere except the tests that are about Celery itself (they start a real worker).
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
# The suite's webhook receivers listen on this machine; tests of the guard itself override it.
WEBHOOK_TRUSTED_HOSTS = ["127.0.0.1"]
