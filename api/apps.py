from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "api"
    verbose_name = "REST API"

    def ready(self) -> None:
        import api.schema  # noqa: F401  registers the OpenAPI extensions (API-key security scheme)
