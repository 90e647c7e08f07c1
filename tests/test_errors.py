"""One error convention: core raises a template and its parameters, the page translates it and keeps
the raw text of an exception in a Details block; network failures say their cause."""
import requests
from streamlit.testing.v1 import AppTest

from core import errors
from core.errors import UserError, network_error


class NameResolutionError(Exception):  # the urllib3 name, as huggingface_hub's requests raise it
    pass


class MaxRetryError(Exception):
    pass


def offline_dns_failure() -> Exception:
    """requests.ConnectionError ← MaxRetryError ← NameResolutionError, as an offline machine sees it."""
    try:
        try:
            raise NameResolutionError("Failed to resolve 'huggingface.co' ([Errno -3] Temporary failure in name "
                                      "resolution)")
        except NameResolutionError as dns:
            raise MaxRetryError("HTTPSConnectionPool(host='huggingface.co', port=443): Max retries exceeded") from dns
    except MaxRetryError as retry:
        try:
            raise requests.ConnectionError(str(retry)) from retry
        except requests.ConnectionError as e:
            return e


def test_network_failures_are_named_by_cause_with_the_raw_text_in_details():
    dns = network_error(offline_dns_failure(), "https://huggingface.co")
    assert dns.text == errors.E_DNS and str(dns) == ("Cannot reach huggingface.co: its name cannot be resolved "
                                                     "(no network, or no DNS).")
    assert "MaxRetryError" not in str(dns) and "NameResolutionError" in dns.details
    refused = network_error(requests.ConnectionError("[Errno 111] Connection refused"), "http://127.0.0.1:9")
    assert refused.text == errors.E_REFUSED and refused.params == {"host": "127.0.0.1:9"}
    assert network_error(requests.ReadTimeout("Read timed out."), "https://x.org").text == errors.E_TIMEOUT
    assert network_error(ValueError("bad repo id"), "https://x.org") is None


def test_a_download_that_cannot_resolve_the_hub_says_so():
    from core.models import hub

    err = hub.classify(offline_dns_failure(), "huggingface", "a/b", "https://huggingface.co")
    assert err.code == "network" and err.text == errors.E_DNS
    assert str(err).startswith("Cannot reach huggingface (https://huggingface.co): its name cannot be resolved")
    assert "MaxRetryError" in err.details and "MaxRetryError" not in str(err)
    assert UserError.from_dict(err.as_dict()).params == err.params  # as a download job stores it


def show(lang: str, err_kind: str) -> AppTest:
    def script():
        import streamlit as st

        from core.errors import UserError
        from core.project import E_NO_PROJECT
        from ui.errors import show_error

        st.session_state["lang"] = st.session_state.get("lang_to_use", "en")
        kind = st.session_state.get("kind")
        try:
            if kind == "user":
                raise UserError(E_NO_PROJECT, details="the raw words", name="'x'", root="/w")
            raise KeyError("some internal key")
        except Exception as e:
            show_error(e, lead="Lead:" if kind == "lead" else "")

    at = AppTest.from_function(script)
    at.session_state["lang_to_use"] = lang
    at.session_state["kind"] = err_kind
    return at.run()


def test_show_error_translates_and_keeps_raw_text_in_details():
    at = show("zh", "user")
    assert [e.value for e in at.error] == ["/w 中没有项目 'x'。"]
    assert [e.label for e in at.expander] == ["详细信息"] and at.expander[0].code[0].value == "the raw words"
    at = show("en", "other")
    assert [e.value for e in at.error] == ["Unexpected error (KeyError): see the details."]
    assert "some internal key" in at.expander[0].code[0].value, "the exception's own words only under Details"


def test_a_failed_job_shows_the_reason_it_stored_else_its_state_with_the_runner_words_in_details():
    def script():
        import streamlit as st

        from core.errors import E_DNS, UserError
        from core.jobs import Job
        from ui.errors import show_job_end

        st.session_state["lang"] = "zh"
        reason = "'push to Hugging Face' failed: exit code 1. See the log."
        stored = {"error": UserError(E_DNS, details="NameResolutionError", host="huggingface.co").as_dict()}
        show_job_end(Job(id="a", kind="push", state="failed", steps=[], reason=reason, meta=stored), "推送")
        show_job_end(Job(id="b", kind="push", state="failed", steps=[], reason=reason), "推送")

    at = AppTest.from_function(script).run()
    assert not at.exception, [e.value for e in at.exception]
    assert [e.value for e in at.error] == ["推送：无法连接 huggingface.co：域名无法解析（没有网络，或 DNS 不可用）。",
                                           "推送：失败。请查看详细信息和日志。"]
    assert [x.code[0].value for x in at.expander] == ["NameResolutionError", "'push to Hugging Face' failed: exit code 1. "
                                                                             "See the log."]
