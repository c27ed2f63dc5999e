"""A running server picks up layout edits; a broken edit keeps the last good layouts live."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from app.config.layouts import LayoutConfigError, load_layouts
from app.main import create_app
from app.settings import Settings
from app.storage.db import Pool

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


async def shortcut_title(client: AsyncTestClient[Any]) -> str:
    r = await client.get(
        "/v1/layouts/home",
        params={"tenant_id": "acme", "user_id": "nobody"},
        headers={"Authorization": "Bearer sk_test_secret"},
    )
    assert r.status_code == 200, r.text
    title: str = r.json()["slots"][0]["widgets"][0]["props"]["title"]
    return title


async def wait_for(predicate: Any, seconds: float = 10) -> None:
    for _ in range(int(seconds / 0.1)):
        if await predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("not reached in time")


async def test_edits_are_picked_up_and_broken_edits_do_not_go_live(
    settings: Settings, pool: Pool, tmp_path: Path
) -> None:
    del pool  # empty tables
    layouts = tmp_path / "layouts"
    shutil.copytree(ROOT / "layouts", layouts)
    home = layouts / "screens" / "home.yaml"
    live = msgspec.structs.replace(settings, layouts_dir=layouts, reload_layouts=True)
    async with AsyncTestClient(app=create_app(live)) as client:
        assert await shortcut_title(client) == "Your work"
        home.write_text(home.read_text().replace("title: Your work", "title: Today"))

        async def edited() -> bool:
            return await shortcut_title(client) == "Today"

        await wait_for(edited)
        home.write_text(
            home.read_text().replace("when: activation.has_next", "when: activation.has_nxt")
        )

        async def reported() -> bool:
            r = await client.get("/readyz")
            return "layout_error" in r.json()["checks"]

        await wait_for(reported)
        ready = (await client.get("/readyz")).json()
        assert "screens/home.yaml" in ready["checks"]["layout_error"]
        assert "unknown signal 'activation.has_nxt'" in ready["checks"]["layout_error"]
        assert await shortcut_title(client) == "Today"  # the last good version is still live


async def test_a_flag_edit_goes_live_and_a_broken_one_does_not(
    settings: Settings, pool: Pool, tmp_path: Path
) -> None:
    """The kill switch of flags.yaml reaches the next evaluation; a rollout that does not add up
    to 100 is reported with its position and the last good flags stay live."""
    del pool
    layouts = tmp_path / "layouts"
    shutil.copytree(ROOT / "layouts", layouts)
    flags = layouts / "flags.yaml"
    live = msgspec.structs.replace(settings, layouts_dir=layouts, reload_layouts=True)
    headers = {"Authorization": "Bearer sk_test_secret"}
    body = {"context": {"targetingKey": "u1", "tenant_id": "acme"}}

    async def evaluation(client: AsyncTestClient[Any]) -> dict[str, Any]:
        r = await client.post("/ofrep/v1/evaluate/flags/new_editor", json=body, headers=headers)
        assert r.status_code == 200, r.text
        answer: dict[str, Any] = r.json()
        return answer

    async with AsyncTestClient(app=create_app(live)) as client:
        assert (await evaluation(client))["reason"] == "SPLIT"
        flags.write_text(
            flags.read_text().replace("  new_editor:\n", "  new_editor:\n    enabled: false\n")
        )

        async def switched_off() -> bool:
            return bool((await evaluation(client))["reason"] == "DISABLED")

        await wait_for(switched_off)
        flags.write_text(flags.read_text().replace("{on: 10, off: 90}", "{on: 10, off: 80}"))

        async def reported() -> bool:
            r = await client.get("/readyz")
            return "layout_error" in r.json()["checks"]

        await wait_for(reported)
        error = (await client.get("/readyz")).json()["checks"]["layout_error"]
        assert "layouts/flags.yaml:" in error and "add up to 90, not 100" in error
        assert (await evaluation(client))["reason"] == "DISABLED"  # the last good flags


async def test_a_stray_byte_is_reported_and_the_watching_goes_on(
    settings: Settings, pool: Pool, tmp_path: Path
) -> None:
    """A Latin-1 byte in a layout file is a problem at its position (the last good layouts stay
    live), and the next good edit is picked up: the watcher did not stop."""
    del pool
    layouts = tmp_path / "layouts"
    shutil.copytree(ROOT / "layouts", layouts)
    home = layouts / "screens" / "home.yaml"
    good = home.read_bytes()
    live = msgspec.structs.replace(settings, layouts_dir=layouts, reload_layouts=True)
    async with AsyncTestClient(app=create_app(live)) as client:
        home.write_bytes(good.replace(b"title: Your work", b"title: Caf\xe9"))

        async def reported() -> bool:
            r = await client.get("/readyz")
            return "not UTF-8" in str(r.json()["checks"].get("layout_error", ""))

        await wait_for(reported)
        assert await shortcut_title(client) == "Your work"
        home.write_bytes(good.replace(b"title: Your work", "title: Café".encode()))

        async def fixed() -> bool:
            return await shortcut_title(client) == "Café"

        await wait_for(fixed)


async def test_a_screen_whose_file_is_gone_stays_served_until_it_is_removed_on_purpose(
    settings: Settings, pool: Pool, tmp_path: Path
) -> None:
    """A deleted screen file would take the screen offline for everyone: the reload is refused
    (reported, the screen still served) until a file says the screen is removed."""
    del pool
    layouts = tmp_path / "layouts"
    shutil.copytree(ROOT / "layouts", layouts)
    live = msgspec.structs.replace(settings, layouts_dir=layouts, reload_layouts=True)
    params = {"tenant_id": "acme", "user_id": "nobody"}
    headers = {"Authorization": "Bearer sk_test_secret"}
    async with AsyncTestClient(app=create_app(live)) as client:
        (layouts / "screens" / "settings.yaml").unlink()

        async def reported() -> bool:
            r = await client.get("/readyz")
            return "settings would go out of service" in str(r.json()["checks"].get("layout_error"))

        await wait_for(reported)
        served = await client.get("/v1/layouts/settings", params=params, headers=headers)
        assert served.status_code == 200, served.text
        (layouts / "screens" / "settings.yaml").write_text(
            "screen: settings\nremoved: true\nnote: moved to the account app\n"
        )

        async def gone() -> bool:
            r = await client.get("/v1/layouts/settings", params=params, headers=headers)
            return r.status_code == 404 and r.json()["error"]["code"] == "unknown_screen"

        await wait_for(gone)
        assert "layout_error" not in (await client.get("/readyz")).json()["checks"]


def test_a_screen_both_defined_and_removed_is_pointed_at(tmp_path: Path) -> None:
    layouts = tmp_path / "layouts"
    shutil.copytree(ROOT / "layouts", layouts)
    tombstone = layouts / "screens" / "zz_settings_removed.yaml"
    tombstone.write_text("screen: settings\nremoved: true\n")
    with pytest.raises(LayoutConfigError) as info:
        load_layouts(layouts)
    (problem,) = info.value.problems
    assert str(problem) == (
        "layouts/screens/zz_settings_removed.yaml:1:9: screen 'settings' is removed here but"
        " defined in layouts/screens/settings.yaml"
    )
