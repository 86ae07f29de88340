// What runs inside the page. chrome.scripting.executeScript serialises one function, so
// everything the page does is this one self-contained function: `pageAct(action, id, ...args)`.
// It answers `{value}` or `{error: {code, message}}` and never throws (a throw inside the page
// does not come back to the worker as an error). CLICK, TYPE and EVALUATE act at most once per
// command id in a document, so a command resumed after a service-worker restart never acts twice.

export function pageAct(action, id, ...args) {
  const fail = (code, message) => ({ error: { code, message } });
  const find = (selector) => {
    try {
      const element = selector ? document.querySelector(selector) : document.body;
      return element ? { element } : fail('NOT_FOUND', `no element matches ${selector}`);
    } catch (error) {
      return fail('VALIDATION_FAILED', `bad selector: ${error.message}`);
    }
  };
  const once = (answer) => {
    const done = (globalThis.__semantestDone ??= {});
    done[id] ??= answer();
    return done[id];
  };

  const click = (selector) => once(() => {
    const { element, error } = find(selector);
    if (error) return { error };
    element.scrollIntoView({ block: 'center', inline: 'center' });
    element.click();
    return { value: { clicked: true, tag: element.tagName.toLowerCase() } };
  });

  const type = (selector, text, clear) => once(() => {
    const { element, error } = find(selector);
    if (error) return { error };
    element.focus();
    let value;
    if (element instanceof HTMLInputElement || element instanceof HTMLTextAreaElement) {
      // The prototype's setter, not `element.value =`: frameworks (React) track the own property.
      const setter = Object.getOwnPropertyDescriptor(Object.getPrototypeOf(element), 'value').set;
      setter.call(element, (clear ? '' : element.value) + text);
      value = element.value;
    } else if (element.isContentEditable) {
      element.textContent = (clear ? '' : element.textContent) + text;
      value = element.textContent;
    } else {
      return fail('VALIDATION_FAILED',
        `${selector} is a <${element.tagName.toLowerCase()}>, not a text field`);
    }
    element.dispatchEvent(new InputEvent('input', { bubbles: true, inputType: 'insertText',
      data: text }));
    element.dispatchEvent(new Event('change', { bubbles: true }));
    return { value: { value } };
  });

  const probe = (selector, visible) => {
    const { element, error } = find(selector);
    if (error?.code === 'VALIDATION_FAILED') return { error };
    return { value: { found: Boolean(element && (!visible || element.getClientRects().length)) } };
  };

  const text = (selector) => {
    const { element, error } = find(selector);
    return error ? { error } : { value: { text: element.innerText ?? element.textContent } };
  };

  const imageSource = (selector) => {
    const { element, error } = find(selector);
    if (error) return { error };
    const source = element.currentSrc || element.src;
    if (!source) return fail('VALIDATION_FAILED', `${selector} has no image source`);
    return { value: { url: new URL(source, document.baseURI).href } };
  };

  // In the page's own world (MAIN), so the page's Content-Security-Policy applies to eval.
  const evaluate = (expression) => once(async () => {
    let value;
    try {
      value = await (0, eval)(expression);
    } catch (error) {
      return fail('EVALUATION_FAILED', `${error.name}: ${error.message}`);
    }
    try {
      return { value: { value: value === undefined ? null : JSON.parse(JSON.stringify(value)) } };
    } catch (error) {
      return fail('EVALUATION_FAILED', `the value cannot be sent as JSON: ${error.message}`);
    }
  });

  const title = () => ({ value: { url: location.href, title: document.title } });

  const actions = { click, type, probe, text, imageSource, evaluate, title };
  return actions[action](...args);
}
