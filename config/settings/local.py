"""The embedded defaults for a first run: SQLite and Celery's filesystem transport, nothing to install."""

from config.settings.base import *  # noqa: F403
from config.settings.base import BASE_DIR, INSTALLED_APPS, env
from demo.venues import DEMO_FORCED_SALE_VENUE, DEMO_PRICE_VENUES

DEBUG = env.bool("DJANGO_DEBUG", default=True)

# The demo (seed data, banner, fake venues, simulated market) and its three fake venues on loopback.
INSTALLED_APPS = [*INSTALLED_APPS, "demo"]
PRICE_VENUES = env.json("PRICE_VENUES", default=DEMO_PRICE_VENUES)
FORCED_SALE_VENUE = env.json("FORCED_SALE_VENUE", default=DEMO_FORCED_SALE_VENUE)

CELERY_DATA_DIR = BASE_DIR / "var" / "celery"
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="filesystem://localhost//")
if CELERY_BROKER_URL.startswith("filesystem://"):
    for sub in ("queue", "processed", "control"):
        (CELERY_DATA_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_DATA_DIR / "queue"),
        "data_folder_out": str(CELERY_DATA_DIR / "queue"),
        "processed_folder": str(CELERY_DATA_DIR / "processed"),
        "control_folder": str(CELERY_DATA_DIR / "control"),
        "store_processed": False,
    }

EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
# On a developer's machine a webhook receiver to try the platform with runs on this machine too.
WEBHOOK_TRUSTED_HOSTS = env.list("WEBHOOK_TRUSTED_HOSTS", default=["127.0.0.1", "::1", "localhost"])
