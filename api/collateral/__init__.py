"""The REST API's collateral resources: views and serializers over the collateral app's selectors and services."""
