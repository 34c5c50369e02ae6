import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")

django_application = get_asgi_application()

from gateway.asgi import GatewayApp  # noqa: E402 - needs Django set up first

# /v1/* (the OpenAI-compatible gateway) is served by a lean ASGI app; everything else by Django.
application = GatewayApp(django_application)
