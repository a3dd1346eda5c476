"""A headless Chromium driven by Selenium, for the index page's browser test and its README screenshot: the
system's browser and driver (Debian: `apt-get install chromium chromium-driver`, which .ci/run does), never a
download (Selenium Manager is not asked for anything).

    driver = chromium(width, height)   # or raises BrowserUnavailable saying what is missing
    why = unavailable()                # None, or why no browser can be driven here

    python tools/browser.py PAGE.html SHOT.png [--width 1400] [--height 1000]   # a screenshot of a local page
"""
import importlib.util
import os
import shutil

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
DRIVERS = ("chromedriver",)
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
         "--allow-file-access-from-files")


class BrowserUnavailable(RuntimeError):
    """No headless browser can be driven here; the message says what is missing."""


def _which(names, env):
    path = os.environ.get(env)
    if path and os.access(path, os.X_OK):
        return path
    for name in names:
        found = shutil.which(name) or (f"/usr/lib/chromium/{name}" if os.access(f"/usr/lib/chromium/{name}", os.X_OK)
                                       else None)
        if found:
            return found
    return None


def unavailable():
    """None when a browser, its driver and Selenium are all here; else why not."""
    if importlib.util.find_spec("selenium") is None:
        return "the selenium package is not installed (pip install -r requirements.txt)"
    if not _which(BROWSERS, "CHROMIUM"):
        return "no Chromium found (Debian: apt-get install chromium chromium-driver; or set $CHROMIUM)"
    if not _which(DRIVERS, "CHROMEDRIVER"):
        return "no chromedriver found (Debian: apt-get install chromium-driver; or set $CHROMEDRIVER)"
    return None


def chromium(width=1400, height=1000):
    """A headless Chromium window of `width` x `height` CSS px that records the console (driver.get_log('browser'))."""
    why = unavailable()
    if why:
        raise BrowserUnavailable(why)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager: never download a browser or a driver
    opts = webdriver.ChromeOptions()
    opts.binary_location = _which(BROWSERS, "CHROMIUM")
    for flag in FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--window-size={width},{height}")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=_which(DRIVERS, "CHROMEDRIVER")), options=opts)


def screenshot(page, png, width=1400, height=1000):
    """A screenshot of a local page (a path) to `png`; returns the browser console's entries."""
    from pathlib import Path

    driver = chromium(width, height)
    try:
        driver.get(Path(page).resolve().as_uri())
        driver.execute_script("return document.readyState")
        driver.execute_async_script(
            "var done = arguments[arguments.length - 1];"
            "Promise.all(Array.from(document.images).filter(i => i.getBoundingClientRect().top < innerHeight)"
            ".map(i => i.complete ? 1 : new Promise(r => { i.onload = i.onerror = r; }))).then(() => done(1));")
        driver.save_screenshot(str(png))
        return driver.get_log("browser")
    finally:
        driver.quit()


def main(argv=None):
    import argparse
    import sys

    p = argparse.ArgumentParser(description="A screenshot of a local page (e.g. a printouts index.html) in headless Chromium.")
    p.add_argument("page")
    p.add_argument("png")
    p.add_argument("--width", type=int, default=1400)
    p.add_argument("--height", type=int, default=1000)
    a = p.parse_args(argv)
    try:
        log = screenshot(a.page, a.png, a.width, a.height)
    except BrowserUnavailable as e:
        sys.exit(f"error: {e}")
    errors = [e for e in log if e.get("level") == "SEVERE"]
    print(f"screenshot: {a.png}" + (f" (the page's console errors: {errors})" if errors else ""))
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
