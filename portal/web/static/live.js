// The board follows the door: the server sends it again (HTML it
// rendered) whenever it changes. EventSource reconnects by itself.
(function () {
  var main = document.getElementById("today");
  if (!main || !window.EventSource) return;
  var es = new EventSource(main.getAttribute("data-live"));
  es.addEventListener("board", function (e) {
    main.innerHTML = e.data;
    main.setAttribute("data-updated", String(Date.now()));
  });
})();
