"""The client portal at ``/portal/``: a client's facilities, what moves their margin ratio, and their own actions."""
