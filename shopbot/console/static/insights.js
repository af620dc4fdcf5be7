// Draws the insights page's charts with the vendored Chart.js, from the JSON block the
// server rendered (#insights-data). Labels come from shoppers' words: Chart.js draws them on
// a canvas as text, never as HTML.
(function () {
  'use strict';
  const source = document.getElementById('insights-data');
  if (!source || typeof Chart === 'undefined') return;
  const tables = JSON.parse(source.textContent);
  const BLUE = '#2456c7';
  const GREEN = '#2e9e5b';
  const RED = '#c8473f';
  const AMBER = '#d99a1c';
  const base = { animation: false, responsive: true, maintainAspectRatio: true, aspectRatio: 2.2,
    plugins: { legend: { position: 'bottom' } } };

  function draw(id, type, labels, datasets, extra) {
    const canvas = document.getElementById(id);
    if (!canvas || !labels.length) return;
    canvas.parentElement.classList.add('has-chart');
    new Chart(canvas, { type, data: { labels, datasets }, options: Object.assign({}, base, extra || {}) });
  }
  const column = (rows, key) => rows.map((r) => r[key]);
  const horizontal = { indexAxis: 'y' };

  const daily = tables.daily || [];
  draw('chart-daily', 'bar', column(daily, 'day'), [
    { label: 'Conversations', data: column(daily, 'conversations'), backgroundColor: BLUE },
    { label: 'Messages', data: column(daily, 'messages'), backgroundColor: GREEN },
  ]);
  draw('chart-fallback', 'line', column(daily, 'day'), [
    { label: 'Fallback rate %', data: column(daily, 'fallback_rate'), borderColor: RED, backgroundColor: RED },
  ], { scales: { y: { min: 0, suggestedMax: 20 } } });
  const top = tables.top_searches || [];
  draw('chart-top_searches', 'bar', column(top, 'query'), [
    { label: 'Searches', data: column(top, 'searches'), backgroundColor: BLUE },
  ], horizontal);
  const gaps = tables.catalog_gaps || [];
  draw('chart-catalog_gaps', 'bar', column(gaps, 'query'), [
    { label: 'Nothing found', data: column(gaps, 'nothing_found'), backgroundColor: RED },
    { label: 'Relaxed', data: column(gaps, 'relaxed'), backgroundColor: AMBER },
  ], Object.assign({ scales: { x: { stacked: true }, y: { stacked: true } } }, horizontal));
  const funnel = tables.funnel || [];
  draw('chart-funnel', 'bar', column(funnel, 'step'), [
    { label: 'Shoppers', data: column(funnel, 'shoppers'), backgroundColor: BLUE },
    { label: 'Products', data: column(funnel, 'events'), backgroundColor: GREEN },
  ]);
  const recs = tables.recommendations || [];
  draw('chart-recommendations', 'bar', column(recs, 'day'), [
    { label: 'Shown', data: column(recs, 'shown'), backgroundColor: BLUE },
    { label: 'Acted on', data: column(recs, 'opened'), backgroundColor: GREEN },
  ]);
  const photos = tables.photos || [];
  draw('chart-photos', 'bar', column(photos, 'predicted'), [
    { label: 'Photos', data: column(photos, 'photos'), backgroundColor: BLUE },
    { label: 'Confident', data: column(photos, 'confident'), backgroundColor: GREEN },
  ]);
})();
