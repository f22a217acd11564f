// API keys in the pages: a dialog asks for one when the server answers 401, and a "Forget key" button
// removes the stored one. The key itself only passes through here to api.js, which keeps and sends it.
import { forgetKey, hasKey, useKeyPrompt } from "./api.js";
import { openDialog } from "./dialog.js";
import { announce } from "./dom.js";
import { t } from "./i18n.js";

// Wire the key prompt and the page's "Forget key" button (shown only while a key is stored); after
// forgetting, the focus goes to `focusAfterForget`, since the button it was on disappears.
export function setupAccess(forgetButton, focusAfterForget) {
  const showForget = () => (forgetButton.hidden = !hasKey());
  useKeyPrompt({ ask: askForKey, changed: showForget });
  forgetButton.addEventListener("click", () => {
    forgetKey();
    focusAfterForget.focus();
    announce(t("keyForgotten"));
  });
  showForget();
}

// The server's own message says why (no key, or a wrong one); null when the user cancels.
async function askForKey(message) {
  const answer = await openDialog({
    kind: "key-dialog",
    title: t("keyTitle"),
    message,
    hint: t("keyKept"),
    fields: [{ name: "key", label: t("keyLabel"), type: "password" }],
    submit: t("keySubmit"),
    cancel: t("cancel"),
    focus: "key",
  });
  return answer && answer.get("key");
}
