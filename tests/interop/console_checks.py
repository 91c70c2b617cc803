#!/usr/bin/env python3
"""The web console in a real browser: headless Chromium, driven over WebDriver (Debian's
chromium-driver, Selenium's Python bindings), opens the console, signs in, sees a client that
mosquitto_sub connected, opens its permissions, kicks it and sees it go, adds a ban and sees
the next connect refused, watches the live decisions and explains a publish. A screenshot of
each page goes to --shots.

Usage: ADMIN_TOKEN=... python3 console_checks.py --port MQTT_PORT --admin-port PORT --shots DIR

Prints one line per check ("ok   - name" or "FAIL - name: reason") and "N passed, M failed".
Every wait is bounded.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
import traceback
import uuid

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import Select, WebDriverWait
except ImportError as exc:  # pragma: no cover - environment problem
    print(f"FAIL - imports: {exc}")
    print("0 passed, 1 failed")
    sys.exit(2)

WAIT = 10.0
RUN = uuid.uuid4().hex[:6]


class CheckFailed(Exception):
    pass


def expect(cond: bool, msg: str) -> None:
    if not cond:
        raise CheckFailed(msg)


def browser():
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1000"):
        options.add_argument(arg)
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary:
        options.binary_location = binary
    driver_path = shutil.which("chromedriver") or "/usr/lib/chromium/chromedriver"
    return webdriver.Chrome(service=Service(executable_path=driver_path), options=options)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--admin-port", type=int, required=True)
    parser.add_argument("--shots", required=True)
    args = parser.parse_args()
    os.makedirs(args.shots, exist_ok=True)
    base = f"http://{args.host}:{args.admin_port}"
    token = os.environ["ADMIN_TOKEN"]
    client_id = f"console-{RUN}"
    passed = failed = 0
    sub = None
    try:
        driver = browser()
    except Exception as e:  # noqa: BLE001 - no browser: every check fails
        print(f"FAIL - start headless Chromium: {e}")
        print("0 passed, 1 failed")
        return 1
    wait = WebDriverWait(driver, WAIT)

    def shot(name):
        driver.save_screenshot(os.path.join(args.shots, f"console-{name}.png"))

    def visible(element_id):
        return wait.until(EC.visibility_of_element_located((By.ID, element_id)))

    def nav(page):
        driver.find_element(By.CSS_SELECTOR, f"nav button[data-page='{page}']").click()
        visible(f"page-{page}")

    def check(name, fn):
        nonlocal passed, failed
        try:
            fn()
            print(f"ok   - {name}", flush=True)
            passed += 1
        except Exception as e:  # noqa: BLE001 - a check reports whatever went wrong
            detail = str(e) if isinstance(e, CheckFailed) else traceback.format_exc(limit=3)
            print(f"FAIL - {name}: {detail.strip()}", flush=True)
            failed += 1

    def signs_in():
        driver.get(base + "/")
        visible("page-signin")
        shot("signin")
        driver.find_element(By.ID, "token").send_keys("not-the-token")
        driver.find_element(By.CSS_SELECTOR, "#signin-form button").click()
        wait.until(EC.text_to_be_present_in_element((By.ID, "status"), "refused"))
        expect(driver.find_element(By.ID, "nav").is_displayed() is False, "signed in with a wrong token")
        driver.find_element(By.ID, "token").send_keys(token)
        driver.find_element(By.CSS_SELECTOR, "#signin-form button").click()
        visible("page-overview")
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#overview-now dd"))
        # The charts draw a line once two samples (5 s apart) give an interval.
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#chart-in polyline"))
        caption = driver.find_element(By.CSS_SELECTOR, "#chart-connections + figcaption").text
        expect(caption.startswith("Connections: "), f"connections chart caption: {caption!r}")
        label = driver.find_element(By.ID, "chart-in").get_attribute("aria-label") or ""
        expect("Messages in per second" in label, f"chart label: {label!r}")
        shot("overview")

    def sees_the_client_and_its_permissions():
        nonlocal sub
        sub = subprocess.Popen(
            ["mosquitto_sub", "-h", args.host, "-p", str(args.port), "-V", "mqttv5",
             "-i", client_id, "-t", f"console/{RUN}/#", "-q", "1"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        nav("clients")
        row = f"#client-table tr[data-client-id='{client_id}']"
        deadline = time.monotonic() + WAIT
        while not driver.find_elements(By.CSS_SELECTOR, row):
            expect(time.monotonic() < deadline, f"{client_id} not listed")
            driver.find_element(By.ID, "client-filter").clear()
            driver.find_element(By.ID, "client-filter").send_keys(client_id)
            driver.find_element(By.CSS_SELECTOR, "#client-search button").click()
            time.sleep(0.2)  # the listing is asked again; bounded by the deadline above
        shot("clients")
        driver.find_element(By.CSS_SELECTOR, row).click()
        visible("client-detail")
        wait.until(EC.text_to_be_present_in_element((By.ID, "detail-title"), client_id))
        wait.until(EC.text_to_be_present_in_element((By.ID, "detail-subscriptions"), f"console/{RUN}/#"))
        default = driver.find_element(By.ID, "detail-default").text
        expect("allowed" in default or "Otherwise" in default, f"permissions: {default!r}")
        shot("client-detail")

    def kicks_it_and_sees_it_go():
        driver.find_element(By.ID, "kick").click()
        wait.until(EC.text_to_be_present_in_element((By.ID, "status"), f"Kicked {client_id}"))
        try:
            sub.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            pass  # mosquitto_sub may try again; the listing decides
        if sub.poll() is None:
            sub.kill()
            sub.wait()
        row = f"#client-table tr[data-client-id='{client_id}']"
        deadline = time.monotonic() + WAIT
        while True:
            driver.find_element(By.CSS_SELECTOR, "#client-search button").click()
            time.sleep(0.2)  # the listing is asked again; bounded by the deadline
            if not driver.find_elements(By.CSS_SELECTOR, row):
                break
            expect(time.monotonic() < deadline, f"{client_id} still listed after the kick")

    def bans_it_and_the_next_connect_is_refused():
        nav("bans")
        Select(driver.find_element(By.ID, "ban-kind")).select_by_value("client")
        driver.find_element(By.ID, "ban-value").send_keys(client_id)
        driver.find_element(By.ID, "ban-reason").send_keys("console check")
        driver.find_element(By.CSS_SELECTOR, "#ban-form button").click()
        wait.until(EC.text_to_be_present_in_element((By.ID, "ban-table"), client_id))
        shot("bans")
        again = subprocess.run(
            ["mosquitto_sub", "-h", args.host, "-p", str(args.port), "-V", "mqttv5",
             "-i", client_id, "-t", "x", "-C", "1", "-W", "5"],
            capture_output=True, text=True, timeout=WAIT + 5)
        out = (again.stdout + again.stderr).lower()
        expect(again.returncode != 0 and "banned" in out,
               f"a banned client connected: rc {again.returncode}, {out!r}")

    def watches_live_decisions():
        nav("events")
        wait.until(EC.text_to_be_present_in_element((By.ID, "status"), "Watching"))
        subprocess.run(
            ["mosquitto_sub", "-h", args.host, "-p", str(args.port), "-V", "mqttv5",
             "-i", client_id, "-t", "x", "-C", "1", "-W", "5"],
            capture_output=True, text=True, timeout=WAIT + 5)
        wait.until(EC.text_to_be_present_in_element((By.ID, "event-table"), "connection_refused"))
        expect(client_id in driver.find_element(By.ID, "event-table").text, "the refusal names the client")
        shot("events")

    def explains_a_publish():
        nav("explain")
        driver.find_element(By.ID, "explain-client").send_keys(f"explained-{RUN}")
        driver.find_element(By.ID, "explain-topic").send_keys("$SYS/broker/x")
        driver.find_element(By.ID, "explain-user").send_keys("someone")
        driver.find_element(By.CSS_SELECTOR, "#explain-form button").click()
        wait.until(lambda d: d.find_element(By.ID, "explain-verdict").text)
        verdict = driver.find_element(By.ID, "explain-verdict").text
        expect(verdict.startswith("Denied"), f"writing under $SYS: {verdict!r}")
        shot("explain")

    try:
        check("console: sign in refuses a wrong token, then shows the overview", signs_in)
        check("console: a mosquitto_sub client is listed, with its principal, permissions and subscription",
              sees_the_client_and_its_permissions)
        check("console: kick disconnects it and it leaves the list", kicks_it_and_sees_it_go)
        check("console: a ban added in the page refuses the next connect (mosquitto_sub: banned)",
              bans_it_and_the_next_connect_is_refused)
        check("console: the live decision stream shows the refused connect", watches_live_decisions)
        check("console: explain says writing under $SYS is denied", explains_a_publish)
    finally:
        if sub is not None and sub.poll() is None:
            sub.kill()
        driver.quit()
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
