from django.contrib import admin
from django.urls import include, path

admin.site.site_header = "Margin financing — staff admin"
admin.site.site_title = "Margin financing"
admin.site.index_title = "Clients, collateral, facilities and risk"

urlpatterns = [
    path("", include("web.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("api/", include("config.api_urls")),
]
