"""The REST API's notifications resources: views and serializers over the notifications app's selectors and services."""
