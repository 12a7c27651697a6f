from django.urls import path
from items import views

urlpatterns = [
    path("api/health/", views.health, name="health"),
    path("api/v1/data", views.data, name="data"),
]
