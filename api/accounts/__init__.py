"""The REST API's accounts resources: views and serializers over the accounts app's selectors and services."""
