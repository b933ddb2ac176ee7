"""The test suite: PostgreSQL and Redis started by ``scripts/services.py`` (``make test``)."""

from django.core.exceptions import ImproperlyConfigured

from config.settings.base import *  # noqa: F403
from config.settings.base import DATABASES, INSTALLED_APPS, env
from demo.venues import DEMO_FORCED_SALE_VENUE, DEMO_PRICE_VENUES

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
# The demo app, so that its seed data is tested, and its venues as the defaults tests start from.
INSTALLED_APPS = [*INSTALLED_APPS, "demo"]
PRICE_VENUES = env.json("PRICE_VENUES", default=DEMO_PRICE_VENUES)
FORCED_SALE_VENUE = env.json("FORCED_SALE_VENUE", default=DEMO_FORCED_SALE_VENUE)
