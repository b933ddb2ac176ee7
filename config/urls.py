from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

admin.site.site_header = "Margin financing — staff admin"
admin.site.site_title = "Margin financing"
admin.site.index_title = "Clients, collateral, facilities and risk"

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("api/", include("config.api_urls")),
]
