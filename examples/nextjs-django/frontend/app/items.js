export default function Items({ items }) {
  return (
    <ul className="items">
      {items.map((item) => (
        <li key={item.id} data-item-id={item.id}>
          <strong className="title">{item.title}</strong>
          <div className="summary">{item.summary}</div>
        </li>
      ))}
    </ul>
  );
}
