// The catalog import's progress page, carried on by itself: post the page's own
// form for the next chunk, show the rows done, and open the report when every row
// is done. Without this script the form's button does the same, a press a chunk.
"use strict";

(() => {
  const form = document.getElementById("import-continue");
  const bar = document.getElementById("import-progress");
  const said = document.getElementById("import-rows");
  if (!form || !bar || !said || !window.fetch) {
    return;
  }
  const button = form.querySelector("button");
  const hint = document.getElementById("import-hint");

  const stopped = (why) => {
    button.hidden = false;
    hint.textContent = `${why} Press the button to go on from where it stopped.`;
  };

  const step = async () => {
    let answer;
    try {
      answer = await fetch(form.action, {
        method: "POST",
        body: new URLSearchParams(new FormData(form)),
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      });
    } catch (error) {
      stopped("The connection failed.");
      return;
    }
    if (answer.status === 401) {
      stopped("Your session ended: reload the page to sign in again.");
      return;
    }
    const type = answer.headers.get("Content-Type") || "";
    if (!answer.ok || !type.startsWith("application/json")) {
      stopped(`The server answered ${answer.status}.`);
      return;
    }
    const progress = await answer.json();
    bar.max = progress.rows;
    bar.value = progress.rows_done;
    said.textContent =
      `${progress.rows_done} of ${progress.rows} row(s) done: ` +
      `${progress.imported} product(s) imported, ${progress.refused} refused so far.`;
    if (progress.done) {
      window.location.assign(form.dataset.report);
      return;
    }
    step();
  };

  button.hidden = true;
  hint.textContent = "Importing: this page goes on by itself until every row is done.";
  step();
})();
