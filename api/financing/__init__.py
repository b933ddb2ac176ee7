"""The REST API's financing resources: views and serializers over the financing app's selectors and services."""
