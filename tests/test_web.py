"""The web page in a real headless Chromium (Debian's ``chromium``, driven by Playwright).

The server runs Piper's embedded voice and the tiny XTTS (a cloning engine), so
a voice cloned on the page is spoken and advertised over Wyoming. Screenshots of
the main states go to tests/artifacts/.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
import soundfile
from playwright.async_api import Browser, async_playwright

from .helpers import ServerProcess, describe
from .test_openai import decode
from .web_browser import (
    CHROMIUM,
    JOE,
    LAUNCH_ARGS,
    TOKEN,
    Watched,
    ingress_proxy,
    open_page,
    plausible,
    shot,
    spoken,
)
from .xtts_fixture import engine_config

KEY = "sk-web-page"
STORY = " ".join(
    f"Sentence number {n} of the story is read aloud while the rest is made." for n in range(1, 9)
)


@pytest.fixture(scope="module")
def web_server(
    tiny_xtts: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    config = {
        "engines": {"piper": {}, "xtts": engine_config(tiny_xtts)},
        "openai": {"trusted_proxies": ["127.0.0.1"]},  # the ingress proxy of the test below
    }
    process = ServerProcess(Path(tmp_path_factory.mktemp("web")), config).start()
    yield process
    assert process.stop() == 0, process.log()


@pytest.fixture(scope="module")
async def browser(reference_wav: Path) -> AsyncIterator[Browser]:
    """System Chromium, headless; its fake microphone plays the reference recording."""
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[*LAUNCH_ARGS, f"--use-file-for-fake-audio-capture={reference_wav}"],
        )
        yield chromium
        await chromium.close()


@pytest.fixture
async def watched(browser: Browser) -> AsyncIterator[Watched]:
    context = await browser.new_context(viewport={"width": 1280, "height": 1000})
    watched = Watched(await context.new_page())
    yield watched
    await context.close()
    assert watched.errors == [], "console errors on the page"


async def voice_names(server: ServerProcess) -> set[str]:
    return {v.name for v in (await describe(server.port)).tts[0].voices}


# --- browsing and speaking --------------------------------------------------------


async def test_page_lists_voices_engines_and_labels_every_control(
    web_server: ServerProcess, watched: Watched
) -> None:
    page = await open_page(watched, f"http://127.0.0.1:{web_server.http_port}/")
    assert await page.title() == "PolyTTS voices"
    joe = page.locator(f'li.voice[data-voice="{JOE}"]')
    assert "Joe" in await joe.text_content()
    assert await page.locator('li.voice[data-voice="Ana Florence"]').count() == 1
    engines = page.locator("#engine-table tbody")
    await engines.locator("tr[data-engine=xtts]").wait_for()
    assert "Loaded" in await engines.locator("tr[data-engine=piper]").text_content()
    unlabelled = await page.evaluate(
        """[...document.querySelectorAll('input, select, textarea, button')]
        .filter(c => !(c.labels?.length || c.getAttribute('aria-label') || c.textContent.trim()))
        .map(c => c.id || c.outerHTML)"""
    )
    assert unlabelled == []
    await shot(page, "voices")

    await page.fill("#voice-search", "joe english")
    assert await joe.is_visible()
    assert not await page.locator('li.voice[data-voice="Ana Florence"]').is_visible()
    assert "1 of" in await page.text_content("#voice-count")
    await page.fill("#voice-search", "no such voice")
    assert (await page.text_content("#voice-count")).startswith("0 of")

    await page.set_viewport_size({"width": 390, "height": 844})
    await page.fill("#voice-search", "")
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width} px wide on a phone"
    await shot(page, "phone")


async def test_speak_plays_while_streaming_and_downloads(
    web_server: ServerProcess, watched: Watched
) -> None:
    page = await open_page(watched, f"http://127.0.0.1:{web_server.http_port}/")
    await page.evaluate(
        """window.playedWith = null;
        const audio = document.querySelector('#player');
        audio.addEventListener('playing', () => {
          const b = audio.buffered;
          window.playedWith = b.length ? b.end(b.length - 1) : 0;
        }, {once: true});"""
    )
    await page.fill("#speak-text", STORY)
    await page.select_option("#speak-voice", JOE)
    await page.focus("#speak-button")
    await page.keyboard.press("Enter")  # keyboard only
    duration = await spoken(page)
    plausible(duration, STORY)
    buffered_at_start = await page.evaluate("window.playedWith")
    assert buffered_at_start is not None, "playback never started"
    assert buffered_at_start < duration / 2, "playback waited for most of the audio"
    await shot(page, "spoken")

    async with page.expect_download() as info:
        await page.click("#download")
    download = await info.value
    assert download.suggested_filename == "speech.mp3"
    samples, rate = decode(Path(await download.path()).read_bytes(), "mp3")
    assert rate == 22050 and abs(len(samples) / rate - duration) < 0.3


@pytest.mark.parametrize("fmt", ["opus", "pcm", "wav"])
async def test_formats_the_browser_cannot_stream_play_when_complete(
    web_server: ServerProcess, watched: Watched, fmt: str
) -> None:
    text = "The garage door is closed."
    page = await open_page(watched, f"http://127.0.0.1:{web_server.http_port}/")
    await page.fill("#speak-text", text)
    await page.select_option("#speak-format", fmt)
    assert "once it is complete" in await page.text_content("#format-hint")
    await page.click("#speak-button")
    plausible(await spoken(page), text)
    assert await page.get_attribute("#download", "download") == f"speech.{fmt}"


async def test_play_button_speaks_a_sample_in_the_voice_language(
    web_server: ServerProcess, watched: Watched
) -> None:
    page = await open_page(watched, f"http://127.0.0.1:{web_server.http_port}/")
    await page.click(f'li.voice[data-voice="{JOE}"] button.play')
    duration = await spoken(page)
    assert "en sample" in await page.text_content("#speak-status")
    plausible(duration, "Hello, this is how my voice sounds. Have a wonderful day.")


# --- cloning ----------------------------------------------------------------------


async def test_clone_from_a_file_try_rename_and_delete(
    web_server: ServerProcess, watched: Watched, reference_wav: Path
) -> None:
    page = await open_page(watched, f"http://127.0.0.1:{web_server.http_port}/")
    await page.fill("#clone-name", "web-joe")
    await page.set_input_files("#clone-file", str(reference_wav))
    await page.fill("#clone-transcript", "The front door is locked and the garage door is closed.")
    await page.fill("#clone-languages", "en_US, de")
    await page.click("#clone-button")
    voice = page.locator('li.voice[data-voice="web-joe"]')
    await voice.wait_for()
    assert "cloned" in await voice.text_content()
    assert await page.evaluate("document.activeElement.dataset.voice") == "web-joe"
    assert await page.input_value("#speak-voice") == "web-joe"
    assert "web-joe" in await voice_names(web_server)
    await shot(page, "cloned")

    await voice.locator("button.play").click()  # ready to try: the tiny XTTS speaks noise
    assert await spoken(page) > 0

    await voice.get_by_role("button", name="Rename web-joe").click()
    await page.get_by_label("New name for web-joe").fill("Joe from the web")
    await page.keyboard.press("Enter")
    await page.locator('li.voice[data-voice="web-joe"]', has_text="Joe from the web").wait_for()
    async with aiohttp.ClientSession() as session:
        url = f"{web_server.base_url}/audio/voices/web-joe"
        async with session.get(url) as response:
            assert (await response.json())["name"] == "Joe from the web"

    page.once("dialog", lambda dialog: dialog.dismiss())
    await voice.get_by_role("button", name="Delete").click()
    assert "web-joe" in await voice_names(web_server), "deleted without asking"
    page.once("dialog", lambda dialog: dialog.accept())
    await voice.get_by_role("button", name="Delete").click()
    await voice.wait_for(state="detached")
    assert "was deleted" in await page.text_content("#notice")
    assert "web-joe" not in await voice_names(web_server)
    assert not (Path(web_server.config["voices_dir"]) / "web-joe").exists()


async def test_clone_errors_are_plain_words(
    web_server: ServerProcess, watched: Watched, reference_wav: Path, tmp_path: Path
) -> None:
    watched.allowed.append("status of 400")  # the browser logs every 4xx answer
    page = await open_page(watched, f"http://127.0.0.1:{web_server.http_port}/")
    error = page.locator("#clone-error")
    await page.click("#clone-button")
    assert await error.text_content() == "Give the voice a name."
    await page.fill("#clone-name", "../etc")
    await page.click("#clone-button")
    assert "only letters, digits, - and _" in await error.text_content()
    await page.fill("#clone-name", "too-short")
    await page.click("#clone-button")
    assert await error.text_content() == "Record the voice or choose an audio file."

    samples, rate = soundfile.read(reference_wav, dtype="int16")
    short = tmp_path / "short.wav"
    soundfile.write(short, samples[rate // 2 : rate + rate // 2], rate)
    await page.set_input_files("#clone-file", str(short))
    await page.click("#clone-button")
    await page.locator("#clone-error", has_text="not cloned").wait_for()
    assert "too short" in await error.text_content()  # the server's own message
    await shot(page, "clone-error")
    assert "too-short" not in await voice_names(web_server)


async def test_clone_from_the_microphone(web_server: ServerProcess, watched: Watched) -> None:
    page = await open_page(watched, f"http://127.0.0.1:{web_server.http_port}/")
    await page.fill("#clone-name", "mic-voice")
    await page.click("#record-button")
    await page.locator("#record-button[aria-pressed=true]").wait_for()
    await page.wait_for_timeout(4500)
    await page.click("#record-button")
    await page.locator("#record-time", has_text="Recorded").wait_for()
    await page.click("#clone-button")
    await page.locator('li.voice[data-voice="mic-voice"]').wait_for()
    assert "mic-voice" in await voice_names(web_server)
    async with aiohttp.ClientSession() as session:
        url = f"{web_server.base_url}/audio/voices/mic-voice"
        async with session.delete(url) as response:
            assert response.status == 200


# --- ingress and API keys ---------------------------------------------------------


async def test_page_works_under_an_ingress_prefix(
    web_server: ServerProcess, watched: Watched
) -> None:
    seen: list[str] = []
    async with ingress_proxy(web_server.http_port, seen) as port:
        page = await open_page(watched, f"http://127.0.0.1:{port}{TOKEN}")  # no trailing slash
        await page.click("#speak-button")
        assert await spoken(page) > 0
        await shot(page, "ingress", full=False)
    assert f"{TOKEN}/v1/audio/speech" in seen and f"{TOKEN}/health" in seen
    assert all(path.startswith(TOKEN) for path in seen), seen


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """API keys, and an XTTS that fails to load (its checkpoint folder is empty); trusts
    the ingress proxy of the tests (127.0.0.1), as the add-on trusts the Supervisor."""
    tmp = Path(tmp_path_factory.mktemp("web-keyed"))
    broken = {"checkpoint_dir": str(tmp), "device": "cpu"}
    config = {
        "openai": {"api_keys": [KEY], "trusted_proxies": ["127.0.0.1"]},
        "engines": {"piper": {}, "xtts": broken},
    }
    process = ServerProcess(tmp, config).start()
    yield process
    assert process.stop() == 0, process.log()


async def test_failed_engine_shows_its_reason(
    keyed_server: ServerProcess, watched: Watched
) -> None:
    page = await open_page(watched, f"http://127.0.0.1:{keyed_server.http_port}/")
    xtts = page.locator("#engine-table tr[data-engine=xtts]")
    assert "Failed" in await xtts.text_content()
    assert "lacks model.pth" in await xtts.text_content()
    assert "Loaded" in await page.text_content("#engine-table tr[data-engine=piper]")
    assert "not working" in await page.text_content("#engine-summary")
    await shot(page, "engines-failed")


async def test_api_key_is_asked_for_and_remembered(
    keyed_server: ServerProcess, watched: Watched
) -> None:
    watched.allowed.append("status of 401")
    page = await open_page(watched, f"http://127.0.0.1:{keyed_server.http_port}/")
    await page.click("#speak-button")
    dialog = page.locator("#key-dialog[open]")
    await dialog.wait_for()
    assert "API key" in await page.text_content("#key-reason")
    await page.fill("#key-input", "sk-wrong")
    await page.keyboard.press("Enter")
    await dialog.wait_for()  # asked again: the key was wrong
    await shot(page, "api-key", full=False)
    await page.fill("#key-input", KEY)
    await page.keyboard.press("Enter")
    assert await spoken(page) > 0

    await page.reload()
    await page.locator(f'li.voice[data-voice="{JOE}"]').wait_for()
    await page.click("#speak-button")
    assert await spoken(page) > 0
    assert not await page.locator("#key-dialog").is_visible()


async def test_ingress_page_needs_no_key_to_speak_and_manage_voices(
    keyed_server: ServerProcess, watched: Watched, reference_wav: Path
) -> None:
    """The add-on's sidebar page with a key set: Home Assistant signed the user in."""
    seen: list[str] = []
    folder = Path(keyed_server.config["voices_dir"]) / "ingress-joe"
    async with ingress_proxy(keyed_server.http_port, seen) as port:
        page = await open_page(watched, f"http://127.0.0.1:{port}{TOKEN}/")
        await page.click("#speak-button")
        assert await spoken(page) > 0
        await page.fill("#clone-name", "ingress-joe")
        await page.set_input_files("#clone-file", str(reference_wav))
        await page.click("#clone-button")
        voice = page.locator('li.voice[data-voice="ingress-joe"]')
        await voice.wait_for()
        assert folder.is_dir()
        page.once("dialog", lambda dialog: dialog.accept())
        await voice.get_by_role("button", name="Delete").click()
        await voice.wait_for(state="detached")
        assert not await page.locator("#key-dialog").is_visible()
    assert not folder.exists()
    assert f"{TOKEN}/v1/audio/voices" in seen


async def test_page_and_assets_over_http(web_server: ServerProcess) -> None:
    base = f"http://127.0.0.1:{web_server.http_port}"
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base}/", headers={"X-Ingress-Path": TOKEN}) as response:
            assert response.status == 200
            assert "default-src 'self'" in response.headers["Content-Security-Policy"]
            assert f'<base href="{TOKEN}/">' in await response.text()
        hostile = {"X-Ingress-Path": '/x"><script>alert(1)</script>'}
        async with session.get(f"{base}/", headers=hostile) as response:
            page = await response.text()
            assert '<base href="./">' in page and "alert(1)" not in page
        async with session.get(f"{base}/web/app.js") as response:
            assert response.status == 200
            assert response.content_type == "text/javascript"
        for name in ("index.html", "..%2Fweb.py", "missing.js"):
            async with session.get(f"{base}/web/{name}") as response:
                assert response.status == 404, name
        async with session.get(f"{base}/v1/audio/voices") as response:
            library = (await response.json())["library"]
    assert library["engines"] == [{"engine": "xtts", "needs_transcript": False}]
    assert library["limits"]["min_seconds"] == 3.0
    assert library["limits"]["max_seconds"] == 30.0
