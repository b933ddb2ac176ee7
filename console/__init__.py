"""The staff risk console at ``/console/``: the firm's risk on one screen, the at-risk list, queues, stress tests."""
