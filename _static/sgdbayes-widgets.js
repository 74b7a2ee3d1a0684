/* Loaded before require.js and the vendored @jupyter-widgets/html-manager bundle, on pages with saved widget state.
 *
 * 1. RequireJS reads a global `require` object defined before it loads as its configuration. The html-manager
 *    bundle locates its web fonts relative to the AMD module "@jupyter-widgets/html-manager/dist/libembed-amd";
 *    map that module path onto the vendored copy so the fonts load from this book, not from the page's folder.
 * 2. The widgets typeset their labels with MathJax 2's `MathJax.Hub.Queue([...])`; this book serves MathJax 3,
 *    which has no `Hub` ("Cannot read properties of undefined (reading 'Queue')"). Map the call onto MathJax 3.
 */
(function () {
  var here = document.currentScript && document.currentScript.src;
  if (here) {
    var base = new URL("vendor/jupyter-widgets-html-manager-1.0.15/", here).href.replace(/\/$/, "");
    window.require = { paths: { "@jupyter-widgets/html-manager/dist": base } };
  }
  function installHub() {
    var mj = window.MathJax;
    if (!mj || mj.Hub) { return; }
    mj.Hub = {
      Queue: function (job) {
        var el = Array.isArray(job) ? job[2] : undefined;
        var ready = (mj.startup && mj.startup.promise) || Promise.resolve();
        ready.then(function () {
          if (window.MathJax && window.MathJax.typesetPromise) {
            return window.MathJax.typesetPromise(el ? [el] : undefined);
          }
        }).catch(function (err) { console.warn("MathJax could not typeset a widget label:", err); });
      }
    };
  }
  document.addEventListener("DOMContentLoaded", installHub);
})();
