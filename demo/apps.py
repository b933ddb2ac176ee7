from django.apps import AppConfig


class DemoConfig(AppConfig):
    """The demo of `make run`: seed data, the banner, fake venues and a simulated market. Installed by the
    local and test settings only, never in production."""

    name = "demo"
    verbose_name = "Demo"
