from django.db import models


class Item(models.Model):
    """One entry of the list that /api/v1/data returns."""

    title = models.CharField(max_length=200, unique=True)
    summary = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("created", "id")

    def __str__(self) -> str:
        return self.title
