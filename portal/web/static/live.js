// A live part of a page follows the portal: the server sends it again
// (HTML it rendered) whenever it changes. EventSource reconnects by
// itself.
(function () {
  var part = document.querySelector("[data-live]");
  if (!part || !window.EventSource) return;
  var es = new EventSource(part.getAttribute("data-live"));
  es.addEventListener("update", function (e) {
    part.innerHTML = e.data;
    part.setAttribute("data-updated", String(Date.now()));
  });
})();
