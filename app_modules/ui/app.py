"""The Gradio app: tabs over one shared ``Runtime`` (default settings, loaded backends) and a ``Session``
per browser tab (its conversations, files and own settings).

The conversations also live in the visitor's browser (``gr.BrowserState``, the browser's local storage):
a page reload or a server restart puts them back. The browser rather than the server's disk, because
they are the visitor's own and need no server-side account, nothing of them is left on the server
when the visitor goes, and a restarted server needs nothing to find them. Only the text is kept; the
answer videos are not.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import gradio as gr

from app_modules.config import Settings
from app_modules.ui.chat_tabs import builtin_tab, clone_tab, conversation_tab, ensure_session, photo_tab
from app_modules.ui.realtime_tab import realtime_tab
from app_modules.ui.runtime import Runtime
from app_modules.ui.session import close_session, remove_session_folders
from app_modules.ui.settings_tab import settings_tab
from app_modules.ui.turns import chat_messages

STORAGE_KEY = "talker-conversations"


def browser_secret(folder: Path | None = None) -> str:
    """The key Gradio scrambles the browser's copy with, the same across restarts (it is sent to the
    browser, so it hides nothing from the visitor; a random one per start would lose every stored
    conversation at a restart)."""
    from app_modules.tls import cache_dir

    path = (folder or cache_dir().parent) / "browser-state.key"
    try:
        return path.read_text().strip()
    except OSError:
        pass
    key = secrets.token_urlsafe(24)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(key)
        path.chmod(0o600)
    except OSError:
        pass  # read-only home: conversations then survive reloads, not restarts
    return key


def build_demo(settings: Settings, runtime: Runtime | None = None) -> gr.Blocks:
    """Build the UI. Loads no model: backends load on the first turn that needs them."""
    runtime = runtime or Runtime(settings)
    # gradio's own cache (copies of the videos it serves) is emptied of files older than an hour
    with gr.Blocks(title="Talker", delete_cache=(1800, 3600)) as demo:
        gr.Markdown("# Talker\nA portrait that answers you, lip-synced. Type or speak a question.")
        # which model answers here, filled in when the page opens (auto looks for servers then, not at import)
        answering = gr.Markdown(elem_id="answering")
        # the session's histories, folder and settings; removed by the delete callback when the state expires
        state = gr.State(None, delete_callback=close_session)
        stored = gr.BrowserState({}, storage_key=STORAGE_KEY, secret=browser_secret())
        with gr.Tabs():
            with gr.Tab("Avatar chat", id="builtin"):
                builtin = builtin_tab(runtime, state, stored)
            with gr.Tab("Your photo", id="photo"):
                photo = photo_tab(runtime, state, stored)
            with gr.Tab("Conversation", id="conversation"):
                conversation, persona = conversation_tab(runtime, state, stored)
            with gr.Tab("Cloned voice", id="clone"):
                clone = clone_tab(runtime, state, stored)
            realtime_tab(runtime, state)
            with gr.Tab("Settings", id="settings"):
                settings_tab(runtime, state)
        panels = {"builtin": builtin, "photo": photo, "conversation": conversation, "clone": clone}

        def restore(saved, request: gr.Request):
            """A page (re)loaded: its conversations from the browser's copy."""
            session = ensure_session(runtime, None, request)
            session.restore(saved, panels, runtime.settings.limits)
            shown = [chat_messages(session.history(key)) if key in session.histories else gr.skip()
                     for key in panels]
            talk = session.histories.get("conversation")
            return session, *shown, talk.system_prompt if talk and talk.system_prompt else gr.skip()

        demo.load(restore, [stored], [state, *(p.chat for p in panels.values()), persona], api_name=False,
                  concurrency_limit=None, show_progress="hidden")

        def on_unload(request: gr.Request):
            # the tab was closed: its files go now, not when the state expires
            remove_session_folders(runtime.settings, request.session_hash)

        demo.unload(on_unload)
        demo.load(lambda: runtime.answering(), None, answering, api_name=False, concurrency_limit=None)
    demo.talker_runtime = runtime  # webui.launch serves the API over the same runtime (one render limit)
    return demo
