import os

from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from items.models import Item


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """Readiness for kanri: answers without touching the database."""
    return JsonResponse({"ok": True})


@require_GET
def data(request: HttpRequest) -> JsonResponse:
    items = [
        {
            "id": item.id,
            "title": item.title,
            "summary": item.summary,
            "created": item.created.isoformat(),
        }
        for item in Item.objects.all()
    ]
    return JsonResponse(
        {
            "items": items,
            "served_by": f"api:{os.environ.get('KANRI_INSTANCE', '?')} pid {os.getpid()}",
            "generated_at": timezone.now().isoformat(),
        }
    )
