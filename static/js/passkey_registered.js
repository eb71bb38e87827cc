// After django-otp-webauthn registers a passkey, go on to the page named by the button's data-next
// (the devices page, where recovery codes are issued). A file, not inline script: the CSP allows only 'self'.
document.addEventListener("otp_webauthn.register_complete", (event) => {
  const button = document.getElementById("passkey-register-button");
  const next = (button && button.dataset.next) || "/account/second-factor/";
  window.location.href = next;
});
