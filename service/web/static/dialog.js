// A modal dialog built on demand on a native <dialog>: the browser keeps the focus inside it, Escape cancels
// it, and the focus goes back where it was when it closes. Used for the API key prompt and for confirmations.
import { el } from "./dom.js";

let opened = 0; // numbers the ids that tie the dialog to its title and message

// Resolves to the form's FormData when submitted, or null when cancelled. `message` says why it opened
// and `hint` adds a smaller note; `fields` are labelled inputs ({name, label, type}); `focus` names the
// element to focus first ("cancel", or a field's name).
export function openDialog({ kind, title, message, hint, fields = [], submit, cancel, focus }) {
  const id = `dialog-${++opened}`;
  return new Promise((resolve) => {
    const cancelButton = el("button", { type: "button", class: "ghost", "data-action": "cancel", text: cancel });
    const form = el("form", { class: "dialog-form" }, [
      el("h2", { id: `${id}-title`, text: title }),
      el("p", { id: `${id}-message`, class: "dialog-message", text: message }),
      hint ? el("p", { class: "dialog-hint", text: hint }) : null,
      ...fields.map((field) =>
        el("label", { class: "dialog-field" }, [
          el("span", { text: field.label }),
          el("input", {
            name: field.name,
            type: field.type || "text",
            required: true,
            autocomplete: "off",
            spellcheck: "false",
            autofocus: focus === field.name,
          }),
        ]),
      ),
      el("div", { class: "dialog-actions" }, [
        cancelButton,
        el("button", { type: "submit", class: `primary ${kind}-submit`, "data-action": "submit", text: submit }),
      ]),
    ]);
    if (focus === "cancel") cancelButton.autofocus = true;
    const dialog = el(
      "dialog",
      { class: `dialog ${kind}`, "aria-labelledby": `${id}-title`, "aria-describedby": `${id}-message` },
      [form],
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      resolve(new FormData(form));
      dialog.close();
    });
    cancelButton.addEventListener("click", () => dialog.close());
    // Closed by a button or by Escape: a promise resolves once, so after a submit this null is ignored.
    dialog.addEventListener("close", () => {
      resolve(null);
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}
