from django.templatetags.static import static
from django.urls import path
from django.views.generic import RedirectView

from web import views

app_name = "web"


class FaviconView(RedirectView):
    """Browsers ask for /favicon.ico whatever the page says; a missing one is a 404 in every console."""

    permanent = False

    def get_redirect_url(self, *args, **kwargs) -> str:
        return static("favicon.svg")


urlpatterns = [
    path("", views.home, name="home"),
    path("sign-in/", views.SignInView.as_view(), name="sign_in"),
    path("sign-out/", views.SignOutView.as_view(), name="sign_out"),
    path("favicon.ico", FaviconView.as_view(), name="favicon"),
]
