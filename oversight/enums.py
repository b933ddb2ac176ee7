from django.db import models


class StressRunStatus(models.TextChoices):
    RUNNING = "running", "Running"
    FINISHED = "finished", "Finished"
    FAILED = "failed", "Failed"


class StressTrigger(models.TextChoices):
    ON_DEMAND = "on_demand", "On demand"
    SCHEDULED = "scheduled", "Scheduled"
    SEED = "seed", "Demo seed"
