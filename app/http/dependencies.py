"""What handlers are given by parameter name (Litestar's `Provide`), and the types they ask with.

`runtime` (the running process), `settings` and `keyring` are the process's own objects: handed
over as they are, never validated per request. The caller, `principal`, is `app.http.auth.Caller`.
"""

from __future__ import annotations

from typing import Annotated

from litestar.datastructures import State
from litestar.di import Provide
from litestar.params import Dependency

from app.http.auth import authenticate
from app.serving.runtime import Runtime
from app.settings import Settings
from app.storage.keys import KeyRing

RuntimeDep = Annotated[Runtime, Dependency(skip_validation=True)]
SettingsDep = Annotated[Settings, Dependency(skip_validation=True)]


def dependencies(settings: Settings) -> dict[str, Provide]:
    """The app's dependencies; the lifespan puts the runtime in `app.state.runtime`."""
    return {
        "runtime": Provide(_runtime, sync_to_thread=False),
        "settings": Provide(lambda: settings, sync_to_thread=False),
        "keyring": Provide(_keyring, sync_to_thread=False),
        "principal": Provide(authenticate),
    }


def _runtime(state: State) -> Runtime:
    runtime: Runtime = state.runtime
    return runtime


def _keyring(state: State) -> KeyRing:
    return _runtime(state).keyring
