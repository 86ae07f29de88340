// Functions that run inside the page (chrome.scripting.executeScript serialises them): each is
// self-contained and answers a plain object, never throws, because a throw inside the page does
// not come back to the worker as an error. CLICK, TYPE and EVALUATE act at most once per command
// id in a document, so a command resumed after a service-worker restart never acts twice.

export function click(id, selector) {
  const done = (globalThis.__semantestDone ??= {});
  if (done[id]) return done[id];
  let element;
  try {
    element = document.querySelector(selector);
  } catch (error) {
    return { error: { code: 'VALIDATION_FAILED', message: `bad selector: ${error.message}` } };
  }
  if (!element) return { error: { code: 'NOT_FOUND', message: `no element matches ${selector}` } };
  element.scrollIntoView({ block: 'center', inline: 'center' });
  element.click();
  done[id] = { value: { clicked: true, tag: element.tagName.toLowerCase() } };
  return done[id];
}

export function type(id, selector, text, clear) {
  const done = (globalThis.__semantestDone ??= {});
  if (done[id]) return done[id];
  let element;
  try {
    element = document.querySelector(selector);
  } catch (error) {
    return { error: { code: 'VALIDATION_FAILED', message: `bad selector: ${error.message}` } };
  }
  if (!element) return { error: { code: 'NOT_FOUND', message: `no element matches ${selector}` } };
  element.focus();
  let value;
  if (element instanceof HTMLInputElement || element instanceof HTMLTextAreaElement) {
    // The prototype's setter, not `element.value =`: frameworks (React) track the own property.
    const prototype = Object.getPrototypeOf(element);
    const setter = Object.getOwnPropertyDescriptor(prototype, 'value').set;
    setter.call(element, (clear ? '' : element.value) + text);
    value = element.value;
  } else if (element.isContentEditable) {
    element.textContent = (clear ? '' : element.textContent) + text;
    value = element.textContent;
  } else {
    return { error: { code: 'VALIDATION_FAILED',
      message: `${selector} is a <${element.tagName.toLowerCase()}>, not a text field` } };
  }
  element.dispatchEvent(new InputEvent('input', { bubbles: true, inputType: 'insertText',
    data: text }));
  element.dispatchEvent(new Event('change', { bubbles: true }));
  done[id] = { value: { value } };
  return done[id];
}

export function probe(selector, visible) {
  let element;
  try {
    element = document.querySelector(selector);
  } catch (error) {
    return { error: { code: 'VALIDATION_FAILED', message: `bad selector: ${error.message}` } };
  }
  const shown = element && (!visible || element.getClientRects().length > 0);
  return { value: { found: Boolean(shown) } };
}

export function text(selector) {
  let element;
  try {
    element = selector ? document.querySelector(selector) : document.body;
  } catch (error) {
    return { error: { code: 'VALIDATION_FAILED', message: `bad selector: ${error.message}` } };
  }
  if (!element) return { error: { code: 'NOT_FOUND', message: `no element matches ${selector}` } };
  return { value: { text: element.innerText ?? element.textContent } };
}

export function imageSource(selector) {
  let element;
  try {
    element = document.querySelector(selector);
  } catch (error) {
    return { error: { code: 'VALIDATION_FAILED', message: `bad selector: ${error.message}` } };
  }
  if (!element) return { error: { code: 'NOT_FOUND', message: `no element matches ${selector}` } };
  const source = element.currentSrc || element.src;
  if (!source) {
    return { error: { code: 'VALIDATION_FAILED', message: `${selector} has no image source` } };
  }
  return { value: { url: new URL(source, document.baseURI).href } };
}

export function title() {
  return { value: { url: location.href, title: document.title } };
}

// Runs in the page's own world (MAIN), so the page's Content-Security-Policy applies to eval.
// A resumed command gets the same evaluation's answer, never a second evaluation.
export function evaluate(id, expression) {
  const done = (globalThis.__semantestEvaluated ??= {});
  done[id] ??= (async () => {
    let value;
    try {
      value = await (0, eval)(expression);
    } catch (error) {
      return { error: { code: 'EVALUATION_FAILED', message: `${error.name}: ${error.message}` } };
    }
    try {
      return { value: { value: value === undefined ? null : JSON.parse(JSON.stringify(value)) } };
    } catch (error) {
      return { error: { code: 'EVALUATION_FAILED',
        message: `the value cannot be sent as JSON: ${error.message}` } };
    }
  })();
  return done[id];
}
