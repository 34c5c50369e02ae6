"""The browser harness's fixtures (controlplane/tests/browser.py) for the tests here."""

from controlplane.tests.browser import browser, browser_for  # noqa: F401 - fixtures
