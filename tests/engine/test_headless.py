import subprocess
import sys


def test_import_engine_leaves_streamlit_out():
    code = "import sys, engine, engine.cli; print('streamlit' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_cli_help_lists_commands():
    out = subprocess.run([sys.executable, "-m", "engine", "--help"], capture_output=True, text=True, check=True)
    assert "demo" in out.stdout


def test_public_api_names_resolve():
    import engine

    for name in engine.__all__:
        assert getattr(engine, name) is not None, name
