"""Packaging: ``python3 setup.py bdist_wheel`` builds an installable, runnable wheel.

The repository keeps the web viewer's files in the top-level ``static/``; the wheel carries
them as ``bot_logging_server/static`` (the app looks there first), so an installed server
needs nothing from the source tree.
"""

import runpy
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
# The version is written once, in the package; read it without importing the package (and
# so without needing its dependencies installed).
VERSION = runpy.run_path(str(HERE / "bot_logging_server" / "_version.py"))["__version__"]


def requirements() -> list[str]:
    """The runtime requirements, from requirements.txt."""
    lines = (HERE / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


packages = find_packages(include=["bot_logging_server", "bot_logging_server.*"])
package_dir = {"": "."}
package_data: dict[str, list[str]] = {}
if any(p.is_file() for p in (HERE / "static").rglob("*")):
    packages.append("bot_logging_server.static")
    package_dir["bot_logging_server.static"] = "static"
    package_data["bot_logging_server.static"] = ["*", "**/*"]

setup(
    name="bot-logging-server",
    version=VERSION,
    description="Self-hosted async collector for log batches (LoggerBotLogging's server)",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=packages,
    package_dir=package_dir,
    package_data=package_data,
    include_package_data=False,
    install_requires=requirements(),
    entry_points={"console_scripts": ["bot-logging-server = bot_logging_server.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Framework :: AsyncIO",
        "Topic :: System :: Logging",
    ],
)
