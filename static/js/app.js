// Behaviour of every page, here rather than inline so that the Content-Security-Policy can
// refuse inline scripts and event-handler attributes.
"use strict";

// <button data-copy-target="ID">: copy the text of the element with that id.
document.addEventListener("click", function (event) {
  var button = event.target.closest && event.target.closest("[data-copy-target]");
  if (!button) return;
  var source = document.getElementById(button.getAttribute("data-copy-target"));
  if (source && navigator.clipboard) navigator.clipboard.writeText(source.textContent);
});
