"""Signal receivers: where the database meets the live system (imported by RealtimeConfig.ready).

* ``client_connected`` / ``client_disconnected`` feed the live-connection
  registry. They are ``async def`` so Django runs them on the event loop: no
  thread hop on the socket path; they only touch memory.
* Revoking, deleting or changing a token, and deactivating or deleting a user,
  disconnect the sockets they authenticated in every process, once the
  transaction commits (``io server disconnect``, so clients do not reconnect
  with the dead credential).
* Changing a ``Room`` makes every process reread the declared rooms.
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver

from . import cluster
from .conf import realtime_settings
from .models import AccessToken, Room
from .registry import process_registry
from .signals import client_connected, client_disconnected

logger = logging.getLogger("realtime.receivers")


@receiver(client_connected)
async def socket_connected(sender: Any, socket: Any, **kwargs: Any) -> None:
    if realtime_settings()["REGISTRY"]:
        process_registry().connected(socket)


@receiver(client_disconnected)
async def socket_disconnected(sender: Any, socket: Any, **kwargs: Any) -> None:
    if realtime_settings()["REGISTRY"]:
        process_registry().disconnected(socket)


# -- credentials ------------------------------------------------------------------------------


def _after_commit(**changes: Any) -> None:
    """Tell every process once the change is visible; a layer outage is logged, never raised into the save."""
    transaction.on_commit(lambda: cluster.disconnect_credentials(**changes), robust=True)


@receiver(post_save, sender=AccessToken)
def token_saved(sender: Any, instance: AccessToken, created: bool, **kwargs: Any) -> None:
    if created:
        return
    if instance.revoked or instance.is_expired():
        _after_commit(tokens=[instance.pk])
    else:  # the expiry may have moved: live sockets re-arm their timers
        _after_commit(expiries={instance.pk: instance.expires})


@receiver(post_delete, sender=AccessToken)
def token_deleted(sender: Any, instance: AccessToken, **kwargs: Any) -> None:
    _after_commit(tokens=[instance.pk])


def user_saved(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    if not created and not instance.is_active:
        _after_commit(users=[instance.pk])


def user_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    _after_commit(users=[instance.pk])


post_save.connect(user_saved, sender=get_user_model(), dispatch_uid="realtime.user_saved")
post_delete.connect(user_deleted, sender=get_user_model(), dispatch_uid="realtime.user_deleted")


# -- declared rooms ---------------------------------------------------------------------------


def _rooms_changed(**kwargs: Any) -> None:
    transaction.on_commit(cluster.invalidate_room_policies, robust=True)


post_save.connect(_rooms_changed, sender=Room, dispatch_uid="realtime.room_saved")
post_delete.connect(_rooms_changed, sender=Room, dispatch_uid="realtime.room_deleted")
m2m_changed.connect(_rooms_changed, sender=Room.users.through, dispatch_uid="realtime.room_users")
m2m_changed.connect(_rooms_changed, sender=Room.groups.through, dispatch_uid="realtime.room_groups")
