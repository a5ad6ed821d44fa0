"""URLs of factpulse_tasks; include them under any prefix::

    path("factpulse/", include("factpulse_tasks.urls")),

which serves the webhook receiver, ``factpulse_tasks:webhook``, at
``/factpulse/webhook/``.
"""

from __future__ import annotations

from django.urls import path

from .webhooks import receive_webhook

app_name = "factpulse_tasks"

urlpatterns = [
    path("webhook/", receive_webhook, name="webhook"),
]
