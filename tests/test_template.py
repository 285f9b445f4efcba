"""The prompt template: what renders, and what fails before anything is sent."""

from __future__ import annotations

import pytest

from batch_magic.errors import TemplateError
from batch_magic.template import Template


def test_placeholders_render_and_single_braces_stay_literal():
    t = Template.compile('Classify {{ review }} as JSON like {"label": "x"}')
    assert t.variables == {"review"}
    assert t.render({"review": "great phone"}) == 'Classify great phone as JSON like {"label": "x"}'


def test_fast_path_gives_the_same_text_as_jinja():
    source = "A: {{ a }}\nB: {{ row['b c'] }} end\n"
    t = Template.compile(source)
    assert t.is_simple
    import jinja2

    expected = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(source).render(
        a="x", row={"b c": 2.5}
    )
    assert t.render_columns({"a": ["x"], "b c": [2.5]}, 1) == [expected]


def test_filters_and_conditionals_use_jinja():
    t = Template.compile("{% if urgent %}URGENT: {% endif %}{{ text | upper }}")
    assert not t.is_simple
    assert t.variables == {"urgent", "text"}
    assert t.render_columns({"urgent": [True, False], "text": ["a", "b"]}, 2) == ["URGENT: A", "B"]


def test_unknown_column_fails_listing_columns_and_a_suggestion():
    t = Template.compile("Summarise {{ reveiw }}")
    with pytest.raises(TemplateError) as err:
        t.check_columns(["review", "stars"])
    text = str(err.value)
    assert "'reveiw'" in text and "'review'" in text and "'stars'" in text
    assert "Did you mean 'review'" in text


def test_syntax_error_names_the_line():
    with pytest.raises(TemplateError, match="line 2"):
        Template.compile("ok\n{{ broken ")


def test_empty_template_is_refused():
    with pytest.raises(TemplateError, match="empty"):
        Template.compile("   \n")


def test_instructions_then_column_appends_the_column():
    t = Template.instructions_then_column("Translate to French:", "text")
    assert t.variables == {"text"}
    assert t.render({"text": "hello"}) == "Translate to French:\n\nhello"
    odd = Template.instructions_then_column("Say:", "my col")
    assert odd.variables == {"my col"}
    assert odd.render({"my col": "hi"}) == "Say:\n\nhi"


def test_an_index_level_name_is_known_and_a_column_is_listed_first():
    t = Template.compile("{{ product }}: {{ text }}")
    assert t.check_columns(["text"], ["product"]) == ["product", "text"]
    with pytest.raises(TemplateError) as err:
        Template.compile("{{ prodcut }}").check_columns(["text"], ["product", "region"])
    text = str(err.value)
    assert "neither a column of the DataFrame nor a level of its index" in text
    assert "Did you mean 'product'" in text
    assert "Columns: 'text'. Index levels: 'product', 'region'." in text


def test_an_unnamed_index_gets_a_hint_how_to_name_it():
    with pytest.raises(TemplateError) as err:
        Template.compile("{{ product }}").check_columns(["text"], [None])
    text = str(err.value)
    assert "The index has no name" in text
    assert "df.index.name = 'product'" in text and "df.rename_axis('product')" in text
    with pytest.raises(TemplateError) as err:
        Template.compile("{{ product }}").check_columns(["text"], ["region", None])
    text = str(err.value)
    assert "Index levels: 'region'." in text
    assert "Index level 1 has no name" in text and "df.rename_axis([...])" in text


@pytest.mark.parametrize(
    "source",
    [
        "{{ text.__class__ }}",
        "{{ text.__class__.__mro__[1].__subclasses__() }}",
        "{{ text.upper.__globals__ }}",
        "{{ '{0.__class__.__init__.__globals__}'.format(text) }}",
        "{{ text.format_map }}{{ '{x.__class__}'.format_map({'x': text}) }}",
        "{% set x = [text] %}{{ x.append(1) }}",
    ],
)
def test_a_template_reaches_no_python_internals(source, tmp_path):
    """The sandbox: a template that names only a real column still cannot reach an
    object's attributes (from there, open() and any code); it fails clearly instead."""
    t = Template.compile(source)
    assert t.variables == {"text"}
    with pytest.raises(TemplateError, match=r"internals|no attribute"):
        t.render_columns({"text": ["a review"]}, 1)


def test_filters_and_string_methods_still_work_in_the_sandbox():
    t = Template.compile("{{ name.title() }} | {{ name | upper }} | {{ '%s!' | format(name) }} | {{ '{}?'.format(name) }}")
    assert t.render_columns({"name": ["ada lovelace"]}, 1) == ["Ada Lovelace | ADA LOVELACE | ada lovelace! | ada lovelace?"]


def test_jinja_globals_are_not_names_a_template_may_use():
    """``cycler``, ``joiner``, ``namespace``... are refused as unknown names, like any other."""
    t = Template.compile("{{ cycler.__init__.__globals__ }} {{ text }}")
    with pytest.raises(TemplateError, match="cycler"):
        t.check_columns(["text"])
