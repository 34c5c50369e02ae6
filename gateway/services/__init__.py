"""Writes to the model catalog (providers, models, prices) and to application routing.

One module per sub-domain: permissions (who may change what), providers, connection
(testing a provider), models, prices, routing and audit; configuration as code in specs
(typed entries), catalog_file (reading the YAML file) and provisioning (applying specs).
Services take typed values: each entry point (API serializer, page form, catalog file)
checks types once; the services check ranges, names, references and permissions.
What callers outside the package use is re-exported here.
"""

from gateway.services.catalog_file import read_catalog_file
from gateway.services.connection import ConnectionCheck, provider_test_connection
from gateway.services.fields import model_names_visible_to
from gateway.services.models import MAX_CONTEXT_WINDOW, model_create, model_disable, model_update
from gateway.services.permissions import require_catalog_manager
from gateway.services.prices import FREE, Price, model_price_current, price_from
from gateway.services.providers import provider_create, provider_disable, provider_update
from gateway.services.provisioning import CatalogEntryError, catalog_apply
from gateway.services.routing import CheckedRouting, routing_check, routing_set
from gateway.services.specs import ModelSpec, ProviderSpec, RoutingSpec

__all__ = [
    "FREE",
    "MAX_CONTEXT_WINDOW",
    "CatalogEntryError",
    "CheckedRouting",
    "ConnectionCheck",
    "ModelSpec",
    "Price",
    "ProviderSpec",
    "RoutingSpec",
    "catalog_apply",
    "model_create",
    "model_disable",
    "model_names_visible_to",
    "model_price_current",
    "model_update",
    "price_from",
    "provider_create",
    "provider_disable",
    "provider_test_connection",
    "provider_update",
    "read_catalog_file",
    "require_catalog_manager",
    "routing_check",
    "routing_set",
]
