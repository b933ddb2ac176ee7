"""Settings shared by every environment. Twelve-factor: anything that differs between machines
comes from the environment (or a ``.env`` file) through django-environ."""

import datetime
from decimal import Decimal
from pathlib import Path

import environ
from csp.constants import NONE, SELF

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
env_file = BASE_DIR / ".env"
if env_file.exists():
    env.read_env(str(env_file))

SECRET_KEY = env("DJANGO_SECRET_KEY", default="insecure-local-only-secret-key-change-me")
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])

INSTALLED_APPS = [
    "config.admin_config.StaffAdminConfig",  # django.contrib.admin, with the staff site (second factor required)
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "djmoney",
    "django_celery_beat",
    "csp",
    "django_htmx",
    "accounts",
    "notifications",
    "ledger",
    "collateral",
    "financing",
    "oversight",
    "web",
    "portal",
    "console",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",  # request.user.is_verified(): signed in with a second factor
    "accounts.middleware.StaffSessionMiddleware",  # staff: second factor, idle and maximum session age
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "web.middleware.ContentSecurityPolicyMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "axes.middleware.AxesMiddleware",  # last: turns a lockout into its page
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "web.context_processors.layout",
            ],
        },
    },
]

# Embedded default: SQLite, so a first run needs no server. Production and the test suite set
# DATABASE_URL to PostgreSQL.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'var' / 'db.sqlite3'}")}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web server, the worker and beat read while one of them writes; IMMEDIATE makes a
    # writer wait for the lock at BEGIN instead of failing half-way through a transaction.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }

# Two PostgreSQL roles (docs/database-roles.md): migrations run as the owner of the tables; the application
# connects as this role, which every ``migrate`` grants exactly what the application does. Empty: one role.
DATABASE_APP_ROLE = env("DATABASE_APP_ROLE", default="")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "web:sign_in"
LOGOUT_URL = "web:sign_out"  # ours: where a signed-in person signs out (never behind a second factor)
LOGIN_REDIRECT_URL = "web:home"
LOGOUT_REDIRECT_URL = "web:sign_in"

# --- Signing in (docs/security.md) ---------------------------------------------------------------
# django-axes refuses a username, and separately an address, after LOGIN_FAILURE_LIMIT failed logins in a
# row, for LOGIN_LOCKOUT_MINUTES (failures during a lockout do not extend it); staff lift a lockout
# earlier in the admin. Every attempt is audited by the handler.
INSTALLED_APPS += ["axes"]
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_HANDLER = "accounts.sign_in.AuditedAxesHandler"
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = datetime.timedelta(minutes=env.int("LOGIN_LOCKOUT_MINUTES", default=30))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_TEMPLATE = "accounts/locked_out.html"
AXES_CLIENT_IP_CALLABLE = "accounts.sign_in.client_ip_address"
AXES_VERBOSE = False
# Staff sign in with a second factor: a TOTP authenticator, recovery codes when it is lost.
INSTALLED_APPS += ["django_otp", "django_otp.plugins.otp_totp", "django_otp.plugins.otp_static"]
OTP_TOTP_ISSUER = env("OTP_TOTP_ISSUER", default="Margin financing")
# A staff session ends after this long without a request, and any session this long after it began.
STAFF_SESSION_IDLE_SECONDS = env.int("STAFF_SESSION_IDLE_SECONDS", default=15 * 60)
SESSION_COOKIE_AGE = env.int("SESSION_MAX_AGE_SECONDS", default=10 * 3600)
# Reverse proxies in front of the platform that append the caller's address to X-Forwarded-For: behind
# them, a login's address is read from that header (0: REMOTE_ADDR, the right value with no proxy).
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "Asia/Hong_Kong"
USE_I18N = True
USE_TZ = True
# The pages' languages, each named in itself for the language switch. The choice is kept in a cookie for
# a year (Django's default cookie ends with the browser session).
LANGUAGES = [("en-gb", "English"), ("zh-hant", "繁體中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
# The project's own CSS and JS and the vendored browser libraries (static/vendor/README.md).
STATICFILES_DIRS = [BASE_DIR / "static"]

# --- Web pages ---------------------------------------------------------------------------------
# Where `/` sends a signed-in person (a URL name or a path): client users to their portal, staff to their
# console. The portal and the console set these when they arrive; until then the client's facilities in
# the browsable API, and the admin.
WEB_CLIENT_HOME = "portal:home"
WEB_STAFF_HOME = "console:home"
# Content security policy (django-csp): scripts, styles, fonts and requests from this site only, no inline
# script or style, images also as data: URLs (Chart.js exports), never framed (docs/web.md).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}
# Paths whose pages may also use inline styles (never scripts): the admin colours statuses that way.
WEB_INLINE_STYLES_UNDER = ["/admin/"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    # django-axes logs every login at INFO; the audit trail already holds each one.
    "loggers": {"django.db.backends": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
}

# --- Money -------------------------------------------------------------------------------------
# Precision is declared once, here. Cash is kept to the currency's minor unit; crypto quantities to
# the asset's own decimals (BTC 8, ETH 18). Ledger amounts and prices are stored with enough places
# for every instrument, and quantised at the edges with an explicit rounding mode.
REPORTING_CURRENCY = "HKD"
CURRENCIES = ("HKD", "USD", "USDT")
CURRENCY_CHOICES = [("HKD", "Hong Kong Dollar"), ("USD", "US Dollar"), ("USDT", "Tether USD")]
DEFAULT_CURRENCY = "HKD"
MONEY_MAX_DIGITS = 20
MONEY_DECIMAL_PLACES = 2
QUANTITY_MAX_DIGITS = 40
QUANTITY_DECIMAL_PLACES = 18
PRICE_MAX_DIGITS = 30
PRICE_DECIMAL_PLACES = 10
RATE_MAX_DIGITS = 12
RATE_DECIMAL_PLACES = 8

# --- The business ------------------------------------------------------------------------------
# Only BTC and ETH are accepted by the SFC as crypto collateral; the list is a setting so that a
# broker can narrow it, and any other crypto asset is refused.
CRYPTO_ALLOWLIST = tuple(env.list("CRYPTO_ALLOWLIST", default=["BTC", "ETH"]))
CRYPTO_HAIRCUT_FLOOR = Decimal(env("CRYPTO_HAIRCUT_FLOOR", default="0.60"))
# Firm-wide cap: total margin loans at most this multiple of the broker's capital.
BROKER_CAPITAL_HKD = Decimal(env("BROKER_CAPITAL_HKD", default="200000000.00"))
FIRM_LOAN_TO_CAPITAL_MULTIPLE = Decimal(env("FIRM_LOAN_TO_CAPITAL_MULTIPLE", default="5"))
# One client's loans at most this share of the broker's capital.
CLIENT_LOAN_SHARE_OF_CAPITAL = Decimal(env("CLIENT_LOAN_SHARE_OF_CAPITAL", default="0.25"))
# Stress tests: the quantity of each asset the market takes in a day without the firm's own selling moving it;
# a run sets what it would have to sell against it (JSON, e.g. {"BTC": "500", "ETH": "8000"}).
STRESS_DAILY_LIQUIDITY = {
    symbol: Decimal(str(quantity))
    for symbol, quantity in env.json("STRESS_DAILY_LIQUIDITY", default={"BTC": "500", "ETH": "8000"}).items()
}
# Professional investor thresholds (HKD), from the Securities and Futures (Professional Investor) Rules.
PI_PORTFOLIO_THRESHOLD_HKD = Decimal("8000000")
PI_TOTAL_ASSETS_THRESHOLD_HKD = Decimal("40000000")
PI_ASSESSMENT_VALIDITY_DAYS = env.int("PI_ASSESSMENT_VALIDITY_DAYS", default=365)

# --- Celery ------------------------------------------------------------------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=env("REDIS_URL", default="redis://127.0.0.1:6379/0"))
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = 60
CELERY_TASK_TIME_LIMIT = 90
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A request queues its tasks after its commit: with the broker down it gives up within a few seconds (logged;
# the periodic pick-ups do the work) rather than holding the answer (docs/resilience.md).
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.2,
}
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_connect_timeout": 2}

# --- Notifications ------------------------------------------------------------------------------
# Staff alerts go to these addresses; when empty, to active risk and credit officers with an e-mail.
STAFF_ALERT_EMAILS = env.list("STAFF_ALERT_EMAILS", default=[])
# When one batch of events (a sweep's margin-call ladder after a crash) would alert staff more than this
# many times, staff get one digest of the batch instead of an e-mail per event; clients and webhooks still
# get every event.
STAFF_ALERT_DIGEST_ABOVE = env.int("STAFF_ALERT_DIGEST_ABOVE", default=100)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="margin@broker.example")
OUTBOX_MAX_ATTEMPTS = env.int("OUTBOX_MAX_ATTEMPTS", default=12)
OUTBOX_BACKOFF_BASE_SECONDS = env.int("OUTBOX_BACKOFF_BASE_SECONDS", default=5)
OUTBOX_BACKOFF_MAX_SECONDS = env.int("OUTBOX_BACKOFF_MAX_SECONDS", default=3600)
WEBHOOK_TIMEOUT_SECONDS = env.float("WEBHOOK_TIMEOUT_SECONDS", default=10.0)
# Webhooks go to public addresses only, and to these: host names, IP addresses or networks (CIDR) of the
# broker's own systems on a private network, e.g. "oms.broker.internal,10.20.0.0/16" (notifications/egress.py).
WEBHOOK_TRUSTED_HOSTS = env.list("WEBHOOK_TRUSTED_HOSTS", default=[])

# --- Margin sweep -------------------------------------------------------------------------------
# A price-driven sweep also revalues clients whose ledger accounts were posted to since the previous
# sweep started, minus this margin (for transactions still open when that sweep read the balances).
SWEEP_POSTING_LOOKBACK_SECONDS = env.int("SWEEP_POSTING_LOOKBACK_SECONDS", default=120)
# Staff are alerted (once per spell) when the last full sweep finished longer ago than this many of its
# intervals; its interval is its schedule's, or this many seconds when no schedule runs it.
SWEEP_OVERDUE_AFTER_INTERVALS = env.int("SWEEP_OVERDUE_AFTER_INTERVALS", default=3)
SWEEP_EXPECTED_INTERVAL_SECONDS = env.int("SWEEP_EXPECTED_INTERVAL_SECONDS", default=60)
# What a sweep writes (docs/operations.md, "What is kept"): a facility's margin state and a ratio snapshot are
# written when its status changes, its debt changes, its ratio crosses its policy's target, or its ratio moved by
# more than this step (0.0025: a quarter of a percentage point) since they were last written; otherwise a
# change is written at most once per this many seconds. 0 and 0 write every change.
SWEEP_RATIO_STEP = Decimal(env("SWEEP_RATIO_STEP", default="0.0025"))
SWEEP_WRITE_INTERVAL_SECONDS = env.int("SWEEP_WRITE_INTERVAL_SECONDS", default=900)

# --- What is kept (docs/operations.md, "What is kept"; the hourly task financing.retention) -----------------
# Raw ratio snapshots for this many days, then hourly rollups for this many, then daily rollups (0: for ever).
RETENTION_RAW_SNAPSHOT_DAYS = env.int("RETENTION_RAW_SNAPSHOT_DAYS", default=14)
RETENTION_HOURLY_ROLLUP_DAYS = env.int("RETENTION_HOURLY_ROLLUP_DAYS", default=90)
RETENTION_DAILY_ROLLUP_DAYS = env.int("RETENTION_DAILY_ROLLUP_DAYS", default=0)
# Venue price quotes for this many days (those of a price a forced sale was planned on are kept).
RETENTION_PRICE_QUOTE_DAYS = env.int("RETENTION_PRICE_QUOTE_DAYS", default=30)
# Daily snapshot partitions created this many days ahead (PostgreSQL).
RETENTION_PARTITIONS_AHEAD_DAYS = env.int("RETENTION_PARTITIONS_AHEAD_DAYS", default=7)

# --- Prices ------------------------------------------------------------------------------------
# The crypto oracle asks every venue for BTC and ETH, drops quotes older than the staleness limit,
# then quotes further than the band from the median of the fresh ones, and takes the median of the
# rest when at least the quorum is left. Each venue: a name, a ccxt exchange id,
# a base URL only for a local fake exchange (what goes into ccxt's urls['api']; it must be a loopback
# address; production leaves it out and ccxt talks to the real venue), a timeout in milliseconds and
# the market per asset (docs/exchanges.md). None unless configured: the demo's fake venues are the
# local and test settings' default (demo/venues.py).
PRICE_VENUES = env.json("PRICE_VENUES", default=[])
# Production checks PRICE_VENUES and FORCED_SALE_VENUE when it starts and refuses to start without venues.
VENUES_CHECKED_AT_START = False
# A crypto quote older than this is dropped; a crypto price the oracle has not confirmed for this long
# is stale. Refresh more often than this.
PRICE_STALENESS_SECONDS = env.int("PRICE_STALENESS_SECONDS", default=60)
# Quotes further than this fraction from the median of the fresh quotes are outliers (0.05 = 5%).
PRICE_BAND = Decimal(env("PRICE_BAND", default="0.05"))
# Fewest quotes left after both filters for a price to be recorded; fewer and the asset is stale.
PRICE_QUORUM = env.int("PRICE_QUORUM", default=2)
# Pushed prices: a security price or an FX rate older than this is stale (4 days span a weekend and a
# public holiday). No forced sale runs on a stale price.
SECURITY_PRICE_MAX_AGE = datetime.timedelta(
    seconds=env.int("SECURITY_PRICE_MAX_AGE_SECONDS", default=4 * 24 * 3600)
)
FX_MAX_AGE = datetime.timedelta(seconds=env.int("FX_MAX_AGE_SECONDS", default=4 * 24 * 3600))
# Sanity checks on prices and FX rates typed or pushed by people and systems (not the crypto oracle, which
# has its own band and quorum): one further than the band from the one in use, or an FX rate of a pegged pair
# outside its peg band, is held until a second person confirms it, and is never used before (docs/prices.md).
# A security's own band (Asset.price_band) wins over PUSHED_PRICE_BAND.
PUSHED_PRICE_BAND = Decimal(env("PUSHED_PRICE_BAND", default="0.25"))
FX_RATE_BAND = Decimal(env("FX_RATE_BAND", default="0.05"))
# "CURRENCY/QUOTE": [lowest, highest]. The Hong Kong dollar's Linked Exchange Rate System: 7.75–7.85 HKD per USD.
FX_PEG_BANDS = {
    pair: (Decimal(low), Decimal(high))
    for pair, (low, high) in env.json("FX_PEG_BANDS", default={"USD/HKD": ["7.75", "7.85"]}).items()
}

# --- REST API ----------------------------------------------------------------------------------
INSTALLED_APPS += [
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "api",
]
# Throttle counters and other shared state: Redis in production (every gunicorn worker counts together),
# process memory by default.
CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}
# Requests allowed per API key (or logged-in user) unless the key carries its own rate.
API_THROTTLE_RATE = env("API_THROTTLE_RATE", default="600/min")
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "api.authentication.ApiKeyAuthentication",  # first: its 401 carries WWW-Authenticate: Bearer
        "api.authentication.StaffSessionAuthentication",  # a session; staff verified with a second factor
    ],
    "DEFAULT_PERMISSION_CLASSES": ["api.permissions.CallerAccess"],
    "DEFAULT_THROTTLE_CLASSES": ["api.throttling.CredentialRateThrottle"],
    "DEFAULT_PARSER_CLASSES": ["api.parsers.JSONParser"],  # duplicate keys and deep nesting refused
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "api.pagination.Pagination",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "api.errors.exception_handler",
    "COERCE_DECIMAL_TO_STRING": True,
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Margin financing API",
    "DESCRIPTION": (
        "For the broker's own systems: push prices and collateral movements, draw down and repay, read "
        "facilities with their margin ratio, follow margin calls and forced sales, receive events. "
        'Amounts are decimal strings; every error is `{"error": {"code", "message", "details"}}`; '
        "every POST accepts an `Idempotency-Key`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema maps every operation and field of the platform: callers with a key or a login only (the docs
    # page sends a browser to log in first, config/api_urls.py).
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # validatorUrl None: Swagger UI would otherwise send the schema to validator.swagger.io.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "SCHEMA_PATH_PREFIX": "/api/v1",
    # OpenAPI 3.1: its ``webhooks`` describe every event the platform sends (notifications/event_types.py).
    "OAS_VERSION": "3.1.0",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "api.schema.add_errors_and_idempotency",
        "api.schema.add_webhooks",
    ],
    "ENUM_NAME_OVERRIDES": {
        "MarginCallStatusEnum": "financing.enums.MarginCallStatus",
        "ForcedSaleStatusEnum": "financing.enums.ForcedSaleStatus",
        "FacilityStatusEnum": "financing.enums.FacilityStatus",
        "MarginStatusEnum": "financing.enums.MarginStatus",
        "KycStatusEnum": "accounts.enums.KycStatus",
        "ApprovalStatusEnum": "accounts.enums.ApprovalStatus",
        "ClientKindEnum": "accounts.enums.ClientKind",
        "AssetKindEnum": "ledger.enums.InstrumentKind",
        "MovementKindEnum": "collateral.enums.MovementKind",
        "CustodyMovementKindEnum": "collateral.enums.CustodyMovementKind",
        "TriggerEnum": "financing.enums.ForcedSaleTrigger",  # the forced-sale trigger kept its name
        "TopUpTriggerEnum": "financing.enums.TopUpTrigger",
        "StressTriggerEnum": "oversight.enums.StressTrigger",  # how a stress run or a daily report came about
        "InstructionStatusEnum": "financing.enums.InstructionStatus",
        "TopUpOutcomeEnum": "financing.enums.TopUpOutcome",
        "CurrencyEnum": CURRENCY_CHOICES,
        "CashCurrencyEnum": [("HKD", "Hong Kong dollar")],
    },
}

# --- Forced sales -------------------------------------------------------------------------------
# Where crypto collateral is sold (JSON): the venue, its markets and the broker's API credentials there,
# without a base_url in production (docs/exchanges.md). None unless configured: the demo's first fake
# venue is the local and test settings' default (demo/venues.py).
FORCED_SALE_VENUE = env.json("FORCED_SALE_VENUE", default={})
# A limit sell is placed this far below the oracle price; a fill worse than that pauses the sale.
FORCED_SALE_PRICE_BAND = Decimal(env("FORCED_SALE_PRICE_BAND", default="0.02"))
# Venue errors in a row (timeouts, rejections, insufficient funds) before a sale is paused and escalated.
FORCED_SALE_MAX_VENUE_ERRORS = env.int("FORCED_SALE_MAX_VENUE_ERRORS", default=5)
# An open limit order that has not filled for this long is cancelled and its remainder re-placed at a
# fresh price.
FORCED_SALE_REPRICE_SECONDS = env.int("FORCED_SALE_REPRICE_SECONDS", default=60)
