"""Production: PostgreSQL, Redis, real secrets. Refuses to start without them."""

from django.core.exceptions import ImproperlyConfigured

from config.settings.base import *  # noqa: F403
from config.settings.base import DATABASES, MIDDLEWARE, env

DEBUG = False
SECRET_KEY = env("DJANGO_SECRET_KEY")  # no default: a missing secret stops start-up
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")
if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured("Production needs DATABASE_URL pointing at PostgreSQL.")
CELERY_BROKER_URL = env("CELERY_BROKER_URL")
# The demo's defaults point at fake venues on loopback: production names its real venues explicitly.
PRICE_VENUES = env.json("PRICE_VENUES")
FORCED_SALE_VENUE = env.json("FORCED_SALE_VENUE")
# Both are checked in full when the platform starts (collateral.apps): an empty or wrong list stops it.
VENUES_CHECKED_AT_START = True
# API throttle counters must be shared by every gunicorn worker and container: Redis (the broker's, unless
# CACHE_URL names another).
CACHES = {"default": env.cache("CACHE_URL", default=env("REDIS_URL", default=CELERY_BROKER_URL))}
CACHES["default"].setdefault("KEY_PREFIX", "margin")
if CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache":
    # A cache that does not answer costs a request at most a second (throttling then fails open).
    CACHES["default"].setdefault("OPTIONS", {}).update({"socket_connect_timeout": 1, "socket_timeout": 1})

# WhiteNoise serves the collected static files (the admin's CSS and JS) from gunicorn.
MIDDLEWARE = [MIDDLEWARE[0], "whitenoise.middleware.WhiteNoiseMiddleware", *MIDDLEWARE[1:]]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# HTTPS only: plain HTTP is redirected, and browsers are told (HSTS) never to try it for a year. Behind a
# proxy that ends TLS, set DJANGO_BEHIND_PROXY=true: only then is its X-Forwarded-Proto header believed (a
# client could send one itself). docs/deployment.md.
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=365 * 24 * 3600)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=True)
if env.bool("DJANGO_BEHIND_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = True
LANGUAGE_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_CONTENT_TYPE_NOSNIFF = True
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env("EMAIL_HOST", default="localhost")
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="margin@localhost")
